-- wgdp-common.lua: helpers shared by wgdp-trial.lua and wgdp-rfc2544.lua.
--
-- Loaded with dofile() from the directory of the calling script; it defines one
-- global table, `wgdp`, and touches nothing else. Every function here uses only
-- the Lua 5.3 standard library and the `pktgen` table of DPDK-Pktgen 23.03.
--
-- Port numbering: Pktgen numbers its ports in the order of the --vdev options, so
-- the README's command lines give port 0 = wired to wgdp's outside port and
-- port 1 = wired to wgdp's inside port. WGDP_OUTSIDE_PORT / WGDP_INSIDE_PORT
-- change that.

wgdp = {}

-- Wall clock in seconds, 10 ms resolution (os.time() only has whole seconds,
-- and os.clock() is CPU time).
function wgdp.now()
    local f = io.open("/proc/uptime", "r")
    if f == nil then
        return os.time()
    end
    local t = f:read("n")
    f:close()
    return t
end

function wgdp.log(fmt, ...)
    io.stdout:write("wgdp: " .. string.format(fmt, ...) .. "\n")
    io.stdout:flush()
end

-- Environment variable as a number, with a default; a value that is not a
-- number is an error rather than silently the default.
function wgdp.env_number(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    local n = tonumber(v)
    if n == nil then
        error(name .. "=" .. v .. " is not a number", 0)
    end
    return n
end

function wgdp.env_string(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

-- session.txt of `wgdp-pktgen pcap`: key=value lines, # comments.
function wgdp.read_session(path)
    local f, err = io.open(path, "r")
    if f == nil then
        error("cannot read the session file: " .. tostring(err), 0)
    end
    local s = {}
    for line in f:lines() do
        local k, v = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
        if k ~= nil then
            s[k] = v
        end
    end
    f:close()
    for _, k in ipairs({ "count", "expires", "outside_mac", "inside_mac", "outside_addr", "inside_addr" }) do
        if s[k] == nil then
            error(path .. ": no " .. k .. "= line (not written by wgdp-pktgen pcap?)", 0)
        end
    end
    s.count = tonumber(s.count)
    s.expires = tonumber(s.expires)
    return s
end

-- Length of the first frame of a pcap file (classic libpcap format, either byte
-- order), without FCS. Pktgen sends every frame of the file and works out the
-- packet rate from their average length; wgdp-pktgen's files have one length.
function wgdp.pcap_frame_len(path)
    local f, err = io.open(path, "rb")
    if f == nil then
        error("cannot read " .. path .. ": " .. tostring(err), 0)
    end
    local head = f:read(24 + 16)
    f:close()
    if head == nil or #head < 40 then
        error(path .. ": no packet in it", 0)
    end
    local magic = string.unpack("<I4", head, 1)
    local order
    if magic == 0xa1b2c3d4 or magic == 0xa1b23c4d then
        order = "<"
    elseif magic == 0xd4c3b2a1 or magic == 0x4d3cb2a1 then
        order = ">"
    else
        error(path .. ": not a pcap file", 0)
    end
    return (string.unpack(order .. "I4", head, 24 + 9))
end

-- The ports a direction sends on and receives on, as Pktgen port numbers.
function wgdp.ports(direction)
    local outside = math.tointeger(wgdp.env_number("WGDP_OUTSIDE_PORT", 0))
    local inside = math.tointeger(wgdp.env_number("WGDP_INSIDE_PORT", 1))
    if direction == "decrypt" then
        return outside, inside
    elseif direction == "encrypt" then
        return inside, outside
    end
    error("WGDP_DIRECTION must be decrypt or encrypt, not " .. tostring(direction), 0)
end

-- Link speed in Mbit/s out of Pktgen's link string, "<UP-100000-FD>"; nil when
-- the link is down.
function wgdp.link_mbps(port)
    local state = pktgen.linkState(tostring(port))[port]
    local speed = tostring(state):match("^<UP%-(%d+)%-")
    return tonumber(speed), state
end

-- Waits until both ports have their link up. Starting to send on a port whose
-- link is down leaves Pktgen 23.03 hanging at quit, so nothing is sent unless
-- this returns true.
function wgdp.wait_links(ports, seconds)
    local deadline = wgdp.now() + seconds
    while true do
        local down = nil
        for _, p in ipairs(ports) do
            local speed, state = wgdp.link_mbps(p)
            if speed == nil then
                down = string.format("port %d is %s", p, tostring(state))
            end
        end
        if down == nil then
            return true
        end
        if wgdp.now() > deadline then
            wgdp.log("link not up after %d s: %s", seconds, down)
            return false
        end
        pktgen.delay(100)
    end
end

-- Makes a Pktgen port a host on its link: its IP address (for ARP requests of
-- wgdp, which Pktgen answers when input processing is on) and its MAC as the
-- source (Pktgen's own packets only; the pcap frames carry their own headers).
function wgdp.host(port, addr, prefix)
    pktgen.set_ipaddr(tostring(port), "src", addr .. "/" .. prefix)
    pktgen.process(tostring(port), "on")
end

-- Port counters as Pktgen last sampled them. Pktgen's timer thread samples the
-- device counters once a second, so a reading is up to a second old: callers
-- wait a little over a second after the traffic stops before reading.
function wgdp.counters(port)
    local s = pktgen.portStats(tostring(port), "port")[port]
    return {
        ipackets = s.ipackets,
        opackets = s.opackets,
        ierrors = s.ierrors,
        oerrors = s.oerrors,
        imissed = s.imissed,
        rx_nombuf = s.rx_nombuf,
    }
end

function wgdp.diff(after, before)
    local d = {}
    for k, v in pairs(after) do
        d[k] = v - (before[k] or 0)
    end
    return d
end

-- Packets per second at `rate` percent of `mbps`, for frames of `len` bytes
-- without FCS: what Pktgen aims at. Pktgen adds 24 bytes per frame (FCS 4,
-- preamble and start delimiter 8, inter-frame gap 12).
function wgdp.pps(rate, mbps, len)
    return mbps * 1e6 / ((len + 24) * 8) * rate / 100
end

-- Sets the sending rate. Pktgen 23.03 paces every port of an lcore by the
-- rate of the lcore's FIRST port (port 0 with -m "1.[0-1]"), worked out from
-- that port's frame length: the pcap's average length if it has a pcap, else its
-- "size". So the rate goes on both ports, and the port without the pcap gets
-- the pcap's frame length as its size (Pktgen's size counts the 4-byte FCS).
function wgdp.set_rate(tx, rx, rate, len)
    pktgen.set(tostring(rx), "size", math.max(64, math.min(1518, len + 4)))
    pktgen.set(tostring(rx), "rate", rate)
    pktgen.set(tostring(tx), "rate", rate)
end

-- One trial: sends `count` packets of `len` bytes (the pcap's) on `tx` at
-- `rate` percent, waits until Pktgen has sent them (or `limit` seconds), lets
-- the gateway drain for `drain_ms`, and returns what left `tx` and what came
-- back on `rx`.
function wgdp.trial(tx, rx, len, rate, count, limit, drain_ms)
    local stx = tostring(tx)
    -- Packets per burst (Pktgen's default is 64, sent back to back): smaller
    -- bursts spread the same rate more evenly.
    local burst = math.tointeger(wgdp.env_number("WGDP_BURST", 0))
    if burst ~= nil and burst > 0 then
        pktgen.set(stx, "burst", burst)
        pktgen.set(tostring(rx), "burst", burst)
    end
    wgdp.set_rate(tx, rx, rate, len)
    pktgen.set(stx, "count", count)
    -- Fresh samples of both ports before the trial (see wgdp.counters).
    pktgen.delay(1100)
    local tx0, rx0 = wgdp.counters(tx), wgdp.counters(rx)
    local metrics = os.getenv("WGDP_METRICS")
    local drops0 = wgdp.drops(metrics)
    local ifaces = os.getenv("WGDP_IFACES")
    local kdrops0 = wgdp.kernel_drops(ifaces)
    local t0 = wgdp.now()
    pktgen.start(stx)
    local timed_out = false
    pktgen.delay(10)
    while pktgen.isSending(stx)[tx] == "y" do
        if wgdp.now() - t0 > limit then
            timed_out = true
            pktgen.stop(stx)
            break
        end
        pktgen.delay(10)
    end
    local seconds = wgdp.now() - t0
    pktgen.delay(drain_ms)
    -- A sample taken after the drain (the timer samples once a second).
    pktgen.delay(1100)
    local dtx = wgdp.diff(wgdp.counters(tx), tx0)
    local drx = wgdp.diff(wgdp.counters(rx), rx0)
    local drops = wgdp.drops_text(drops0, wgdp.drops(metrics))
    local kdrops = nil
    if kdrops0 ~= nil then
        kdrops = wgdp.drops_text(kdrops0, wgdp.kernel_drops(ifaces))
    end
    local r = {
        rate = rate,
        offered = count,
        sent = dtx.opackets,
        received = drx.ipackets,
        seconds = seconds,
        timed_out = timed_out,
        tx_oerrors = dtx.oerrors,
        rx_ierrors = drx.ierrors,
        rx_imissed = drx.imissed,
        rx_nombuf = drx.rx_nombuf,
        drops = drops,
        kernel_drops = kdrops,
    }
    r.lost = r.sent - r.received
    if r.sent > 0 then
        r.loss_pct = 100 * r.lost / r.sent
    else
        r.loss_pct = 0
    end
    -- The rate Pktgen reached: memif pushes back when wgdp's ring is full, so
    -- Pktgen waits instead of dropping, and sends slower than asked.
    if seconds > 0 then
        r.tx_pps = r.sent / seconds
    else
        r.tx_pps = 0
    end
    return r
end

-- wgdp's drop counters from its Prometheus endpoint (metrics.listen,
-- "IP:port"): the workers' drops summed over lcores, keyed "stage/reason", and
-- the ports' device counters of frames lost before wgdp saw them (imissed:
-- full receive ring, e.g. of an AF_XDP socket) or that the device refused, keyed
-- "port/NAME/rx_missed" and so on. nil without curl or when the endpoint does not
-- answer. wgdp renews the figures twice a second.
function wgdp.drops(addr)
    if addr == nil or addr == "" then
        return nil
    end
    local p = io.popen("curl -sf --max-time 2 'http://" .. addr:gsub("'", "") .. "/metrics' 2>/dev/null")
    if p == nil then
        return nil
    end
    local t, any = {}, false
    for line in p:lines() do
        local labels, v = line:match("^wgdp_worker_drops_total{(.-)}%s+(%S+)")
        if labels ~= nil then
            local stage = labels:match('stage="([^"]*)"')
            local reason = labels:match('reason="([^"]*)"')
            if stage and reason and tonumber(v) then
                local k = stage .. "/" .. reason
                t[k] = (t[k] or 0) + tonumber(v)
                any = true
            end
        end
        local what, plabels, pv = line:match(
            "^wgdp_port_([rt]x_[a-z]+)_total{(.-)}%s+(%S+)")
        if what == "rx_missed" or what == "rx_nombuf" or what == "rx_errors" or what == "tx_errors" then
            local port = plabels:match('port="([^"]*)"')
            if port and tonumber(pv) then
                t["port/" .. port .. "/" .. what] = tonumber(pv)
                any = true
            end
        end
    end
    p:close()
    if not any then
        return nil
    end
    return t
end

-- The kernel's drop counters of network interfaces, keyed "IFACE/rx" and
-- "IFACE/tx", for veth ends used with net_af_xdp: frames the kernel dropped
-- before they reached an AF_XDP socket (wgdp's or Pktgen's) show only there.
-- `ifaces` is a comma-separated list; nil when empty. Pktgen must run in the
-- network namespace of the interfaces (ip netns exec mounts its /sys).
function wgdp.kernel_drops(ifaces)
    if ifaces == nil or ifaces == "" then
        return nil
    end
    local t = {}
    for iface in ifaces:gmatch("[^,%s]+") do
        for _, dir in ipairs({ "rx", "tx" }) do
            local f = io.open("/sys/class/net/" .. iface .. "/statistics/" .. dir .. "_dropped", "r")
            if f ~= nil then
                t[iface .. "/" .. dir] = f:read("n")
                f:close()
            end
        end
    end
    return t
end

-- "decrypt/replay=3,tx/queue_full=60" of the counters that moved, "none" if
-- none did, "unknown" without both readings.
function wgdp.drops_text(before, after)
    if before == nil or after == nil then
        return "unknown"
    end
    local moved = {}
    for k, v in pairs(after) do
        local d = v - (before[k] or 0)
        if d ~= 0 then
            moved[#moved + 1] = string.format("%s=%d", k, d)
        end
    end
    table.sort(moved)
    if #moved == 0 then
        return "none"
    end
    return table.concat(moved, ",")
end

function wgdp.result_line(tag, direction, len, r)
    return string.format(
        "%s direction=%s frame=%d rate_pct=%.6g offered=%d sent=%d received=%d lost=%d "
            .. "loss_pct=%.4f seconds=%.2f tx_pps=%.0f timed_out=%s rx_imissed=%d rx_nombuf=%d "
            .. "wgdp_drops=%s",
        tag, direction, len, r.rate, r.offered, r.sent, r.received, r.lost, r.loss_pct,
        r.seconds, r.tx_pps, tostring(r.timed_out), r.rx_imissed, r.rx_nombuf, r.drops)
        .. (r.kernel_drops and (" kernel_drops=" .. r.kernel_drops) or "")
end

-- Runs `body` and ends Pktgen whatever happens: a Lua error would otherwise
-- leave Pktgen in its interactive prompt.
function wgdp.run(name, body)
    local ok, err = pcall(body)
    if not ok then
        wgdp.log("%s failed: %s", name, tostring(err))
        io.stdout:write("WGDP_ERROR " .. name .. ": " .. tostring(err) .. "\n")
        io.stdout:flush()
    end
    pktgen.quit()
end
