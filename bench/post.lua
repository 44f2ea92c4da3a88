-- SPDX-License-Identifier: ISC
-- wrk script for bench/run.sh: POSTs a real ClickSend inbound SMS form body (the file named
-- after "--" on wrk's command line) to the URL's path, each request with a message_id of its
-- own so that clicksend-relayd stores every one instead of counting duplicates. The same
-- script drives every server, so the client's cost is the same for all of them.
--   wrk -t1 -c10 -d10s --latency -s bench/post.lua http://127.0.0.1:PORT/PATH -- BODYFILE
-- At the end it prints one line for bench/report.py:
--   BENCH requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N

-- tid is a global: thread:set() in setup() writes it into each thread.
local head, tail, counter = nil, nil, 0
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local threads = {}

-- Splits the body around its message_id value: head .. new id .. tail.
local function split(body)
	local s, e = body:find("&message_id=[^&]*")
	if s == nil then
		error("post.lua: the body has no message_id field")
	end
	return body:sub(1, s + #"&message_id=" - 1), body:sub(e + 1)
end

function setup(thread)
	thread:set("tid", #threads + 1)
	table.insert(threads, thread)
end

function init(args)
	local f = assert(io.open(args[1], "rb"))
	local body = f:read("*a"):gsub("%s+$", "")
	f:close()
	head, tail = split(body)
	math.randomseed(os.time() + tid * 7919)
end

-- A UUID-shaped id: random leading groups spread the inserts over the store's indexes as
-- ClickSend's ids do; the thread number and a counter keep it unique within the run.
function request()
	counter = counter + 1
	local id = string.format("%08X-%04X-%04X-%04X-%012X", math.random(0, 0x7fffffff),
		math.random(0, 0xffff), math.random(0, 0xffff), tid, counter)
	return wrk.format("POST", nil, headers, head .. id .. tail)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
		summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
		latency:percentile(50), latency:percentile(99)))
end
