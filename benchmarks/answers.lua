-- wrk script: one line per response, "start end pid value", to a file per
-- wrk thread, with CLOCK_MONOTONIC times (the clock of Python's
-- time.monotonic), so a benchmark can ask when each worker first answered a
-- value and how long each request took. Run with as many threads as
-- connections (-t N -c N): each thread then has one request in flight and
-- its start time is that request's.
--
--   wrk -t 16 -c 16 -d 1h -s benchmarks/answers.lua http://127.0.0.1:8000/ -- DIR [PAUSE_MS]
--
-- PAUSE_MS (default 0): each connection waits that long between requests,
-- for a load below saturation.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } answers_timespec;
int clock_gettime(int clock, answers_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("answers_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local out, started
local pause_ms = 0
function init(args)
  out = io.open(args[1] .. "/answers-" .. thread_id .. ".log", "w")
  out:setvbuf("line")
  pause_ms = tonumber(args[2] or "0")
end

function delay()
  return pause_ms
end

function request()
  started = now()
  return wrk.format()
end

function response(status, headers, body)
  local pid = body:match('"pid": *(%d+)') or "-"
  local value = body:match('"value": *"?([^,}"]*)') or "-"
  out:write(string.format("%.6f %.6f %s %s\n", started, now(), pid, value))
end
