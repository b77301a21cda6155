//! Reading by parts and by differences gives what reading the whole text gives.
