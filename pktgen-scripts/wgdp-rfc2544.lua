-- wgdp-rfc2544.lua: RFC 2544 throughput of a wgdp gateway in one direction,
-- found by a binary search on Pktgen's rate, all within one Pktgen run.
--
-- Each trial sends WGDP_TRIAL_SECONDS worth of packets at the rate under test;
-- a trial passes when no more than WGDP_LOSS_PCT percent of them are lost AND
-- Pktgen reached the rate (memif pushes back instead of dropping: when wgdp's
-- receive ring is full, Pktgen waits, so an overloaded gateway shows up as a
-- trial that took too long rather than as loss). The search narrows the range
-- [0, WGDP_MAX_RATE] until it is WGDP_RESOLUTION wide, and prints
--
--   WGDP_TRIAL ... pass=true|false why=...      one per trial
--   WGDP_RFC2544 direction=encrypt frame=64 throughput_pct=... throughput_pps=...
--     trials=N complete=true|false
--
-- Directions:
--   encrypt  plaintext (encrypt.pcap) into wgdp's inside port; Pktgen loops the
--            pcap as often as the trials need.
--   decrypt  transport messages (decrypt.pcap) into the outside port. wgdp accepts
--            each message once, so the trials take consecutive, never-sent slices
--            of the pcap (Pktgen sends its pcap pool in order and carries on where
--            the previous trial stopped) and the search ends, incomplete, when the
--            pcap has too few messages left for the next trial. rfc2544.sh does
--            the decrypt search without that limit, one Pktgen run per trial.
--
-- Both directions must end before the sessions expire (`expires` in
-- session.txt, about 170 s after `wgdp-pktgen pcap`); the search stops,
-- incomplete, when the next trial would not fit.
--
-- Environment (see README.md):
--   WGDP_SESSION, WGDP_PCAP  session.txt and the loaded pcap (required)
--   WGDP_DIRECTION       encrypt (default) or decrypt
--   WGDP_TRIAL_SECONDS   length of a trial at its rate; default 2
--   WGDP_MAX_RATE        upper end of the search, percent of link speed; default 1
--                        (memif's 100 Gbit/s: 1% is 1.4 million 64-byte frames/s)
--   WGDP_RESOLUTION      stop when the range is this narrow, in percent; default 0.01
--   WGDP_LOSS_PCT        loss a trial may have and pass, percent; default 0
--   WGDP_RATE_SLACK      shortfall of Pktgen's rate a trial may have, fraction;
--                        default 0.05
--   WGDP_RETRY           run a failed trial again, up to this many times, before
--                        taking the rate as failed; default 0
--   WGDP_DRAIN_MS        wait after a trial's last packet; default 500
--   WGDP_METRICS         wgdp's metrics.listen, to name its drops per trial (optional)
--   WGDP_BURST           packets per burst; default Pktgen's 64
--   WGDP_IFACES          veth ends (gw-out,gw-in,pg-out,pg-in) whose kernel drop
--                        counters to report, for net_af_xdp (optional)
--   WGDP_OUTSIDE_PORT, WGDP_INSIDE_PORT  Pktgen port numbers; default 0 and 1

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wgdp-common.lua")

wgdp.run("wgdp-rfc2544", function()
    pktgen.screen("off")
    local direction = wgdp.env_string("WGDP_DIRECTION", "encrypt")
    local tx, rx = wgdp.ports(direction)
    local session_path = os.getenv("WGDP_SESSION") or error("WGDP_SESSION is not set", 0)
    local pcap_path = os.getenv("WGDP_PCAP") or error("WGDP_PCAP is not set", 0)
    local s = wgdp.read_session(session_path)
    local len = wgdp.pcap_frame_len(pcap_path)
    local seconds = wgdp.env_number("WGDP_TRIAL_SECONDS", 2)
    local max_rate = wgdp.env_number("WGDP_MAX_RATE", 1)
    local resolution = wgdp.env_number("WGDP_RESOLUTION", 0.01)
    local loss_ok = wgdp.env_number("WGDP_LOSS_PCT", 0)
    local slack = wgdp.env_number("WGDP_RATE_SLACK", 0.05)
    local drain = math.tointeger(wgdp.env_number("WGDP_DRAIN_MS", 500))
    local retry = math.tointeger(wgdp.env_number("WGDP_RETRY", 0))
    if seconds <= 0 or max_rate <= 0 or max_rate > 100 or resolution <= 0 then
        error("WGDP_TRIAL_SECONDS, WGDP_MAX_RATE (up to 100) and WGDP_RESOLUTION must be above 0", 0)
    end
    if retry == nil or retry < 0 or drain == nil then
        error("WGDP_RETRY and WGDP_DRAIN_MS must be whole numbers", 0)
    end

    local outside = math.tointeger(wgdp.env_number("WGDP_OUTSIDE_PORT", 0))
    local inside = math.tointeger(wgdp.env_number("WGDP_INSIDE_PORT", 1))
    if not wgdp.wait_links({ outside, inside }, 10) then
        error("the ports to wgdp are not up (is wgdp running, with these memif sockets?)", 0)
    end
    wgdp.host(outside, s.outside_addr, 24)
    wgdp.host(inside, s.inside_addr, 24)
    local mbps = wgdp.link_mbps(tx)

    -- Fresh transport messages left in the pcap (decrypt only).
    local fresh = s.count
    local trials = 0
    local stop = nil
    -- Pktgen's achieved rate in the passing trial at the highest rate.
    local measured = 0

    -- Runs one trial at `rate`; returns true when it passed, or nil when it
    -- could not be run (sessions about to expire, pcap used up).
    local function try(rate)
        local pps = wgdp.pps(rate, mbps, len)
        local count = math.max(1, math.floor(pps * seconds + 0.5))
        local left = s.expires - os.time()
        -- Room for the longest a trial may take: its time limit and the waits.
        if left < seconds * 3 + 10 then
            stop = string.format("sessions_expire_in_%ds", left)
            return nil
        end
        if direction == "decrypt" and count > fresh then
            stop = string.format("pcap_used_up_%d_fresh_messages_left", fresh)
            return nil
        end
        local r = wgdp.trial(tx, rx, len, rate, count, seconds * 3 + 5, drain)
        trials = trials + 1
        fresh = fresh - r.sent
        local why = "ok"
        if r.timed_out or r.sent < count then
            why = "not_all_sent"
        elseif r.loss_pct > loss_ok then
            why = "loss"
        elseif r.tx_pps < pps * (1 - slack) then
            why = string.format("rate_short_%.0f_of_%.0f_pps", r.tx_pps, pps)
        end
        print(wgdp.result_line("WGDP_TRIAL", direction, len, r)
            .. string.format(" pass=%s why=%s", tostring(why == "ok"), why))
        io.stdout:flush()
        if why == "ok" then
            measured = r.tx_pps
        end
        return why == "ok"
    end

    -- A trial at `rate`, and up to `retry` more while they fail.
    local function at_rate(rate)
        local ok
        for _ = 0, retry do
            ok = try(rate)
            if ok ~= false then
                return ok
            end
        end
        return ok
    end

    wgdp.log("%s search: frames of %d bytes (+FCS), rate 0..%g%% of %d Mbit/s, resolution %g%%, "
        .. "%g s trials, loss allowed %g%%", direction, len, max_rate, mbps, resolution, seconds, loss_ok)

    -- The range [lo, hi]: lo passed (0 passes by definition), hi failed or is
    -- the top of the search and untested.
    local lo, hi = 0, max_rate
    local ok = at_rate(max_rate)
    if ok then
        lo = max_rate
    elseif ok ~= nil then
        while hi - lo > resolution do
            local mid = (lo + hi) / 2
            ok = at_rate(mid)
            if ok == nil then
                break
            elseif ok then
                lo = mid
            else
                hi = mid
            end
        end
    end
    local complete = stop == nil
    print(string.format(
        "WGDP_RFC2544 direction=%s frame=%d throughput_pct=%.6g throughput_pps=%.0f "
            .. "measured_pps=%.0f upper_pct=%.6g trials=%d complete=%s%s",
        direction, len, lo, wgdp.pps(lo, mbps, len), measured, hi, trials, tostring(complete),
        complete and "" or (" stopped=" .. stop)))
end)
