-- wgdp-trial.lua: one trial of DPDK-Pktgen against a wgdp gateway.
--
-- Pktgen sends the pcap it was started with (-s PORT:FILE) at one rate, for one
-- count, and this script prints one line of what was sent and what came back:
--
--   WGDP_RESULT direction=decrypt frame=138 rate_pct=0.5 offered=200000 sent=200000
--     received=200000 lost=0 loss_pct=0.0000 seconds=1.04 tx_pps=192308 ...
--
-- Environment (see README.md):
--   WGDP_SESSION      session.txt written by `wgdp-pktgen pcap` (required)
--   WGDP_PCAP         the pcap Pktgen loaded, to learn its frame length (required)
--   WGDP_DIRECTION    decrypt (transport packets into the outside port, plaintext
--                     out of the inside port) or encrypt (the reverse); default decrypt
--   WGDP_RATE         percent of the sending port's link speed; default 1
--   WGDP_COUNT        packets to send; default the pcap's count. In the decrypt
--                     direction at most the pcap's count: each transport message is
--                     accepted once, a second copy is a replay and dropped.
--   WGDP_DRAIN_MS     wait after the last packet before reading counters; default 500
--   WGDP_LIMIT        give up sending after this many seconds; default 60
--   WGDP_BURST        packets per burst; default Pktgen's 64
--   WGDP_METRICS      wgdp's metrics.listen, to name its drops (optional)
--   WGDP_IFACES       veth ends (gw-out,gw-in,pg-out,pg-in) whose kernel drop
--                     counters to report, for net_af_xdp (optional)
--   WGDP_OUTSIDE_PORT, WGDP_INSIDE_PORT  Pktgen port numbers; default 0 and 1

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wgdp-common.lua")

wgdp.run("wgdp-trial", function()
    pktgen.screen("off")
    local direction = wgdp.env_string("WGDP_DIRECTION", "decrypt")
    local tx, rx = wgdp.ports(direction)
    local session_path = os.getenv("WGDP_SESSION") or error("WGDP_SESSION is not set", 0)
    local pcap_path = os.getenv("WGDP_PCAP") or error("WGDP_PCAP is not set", 0)
    local s = wgdp.read_session(session_path)
    local len = wgdp.pcap_frame_len(pcap_path)
    local rate = wgdp.env_number("WGDP_RATE", 1)
    local count = math.tointeger(wgdp.env_number("WGDP_COUNT", s.count))
    local drain = math.tointeger(wgdp.env_number("WGDP_DRAIN_MS", 500))
    local limit = wgdp.env_number("WGDP_LIMIT", 60)
    if count == nil or count < 1 then
        error("WGDP_COUNT must be a whole number above 0", 0)
    end
    if direction == "decrypt" and count > s.count then
        error(string.format("WGDP_COUNT=%d is more than the %d transport messages of the pcap: "
            .. "the gateway drops the repeats as replays", count, s.count), 0)
    end

    local outside = math.tointeger(wgdp.env_number("WGDP_OUTSIDE_PORT", 0))
    local inside = math.tointeger(wgdp.env_number("WGDP_INSIDE_PORT", 1))
    if not wgdp.wait_links({ outside, inside }, 10) then
        error("the ports to wgdp are not up (is wgdp running, with these memif sockets?)", 0)
    end
    -- Answer wgdp's ARP requests for the generator's addresses in session.txt.
    wgdp.host(outside, s.outside_addr, 24)
    wgdp.host(inside, s.inside_addr, 24)

    local mbps = wgdp.link_mbps(tx)
    local expect = count / wgdp.pps(rate, mbps, len)
    local left = s.expires - os.time()
    wgdp.log("%s: %d packets of %d bytes (+FCS) on port %d at %.4g%% of %d Mbit/s "
        .. "(%.0f packets/s, %.2f s); sessions expire in %d s",
        direction, count, len, tx, rate, mbps, wgdp.pps(rate, mbps, len), expect, left)
    if left < expect + 3 then
        error(string.format("the sessions of %s expire in %d s, too soon for a %.1f s trial: "
            .. "write new pcaps", session_path, left, expect), 0)
    end
    limit = math.min(limit, left - 2)

    local r = wgdp.trial(tx, rx, len, rate, count, limit, drain)
    print(wgdp.result_line("WGDP_RESULT", direction, len, r))
end)
