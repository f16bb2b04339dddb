-- A token bucket, shared by every node: KEYS[1] the bucket; ARGV[1] tokens added per second, ARGV[2] the
-- bucket's size (the burst), ARGV[3] how many tokens the caller would like (a node leases a few at a
-- time and spends them locally). Grants what it can, up to that many. Answers {tokens granted, the
-- milliseconds until one more will be there (0 when some were granted)}. Time is Redis's own, so nodes
-- with skewed clocks agree.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
local wait = 0
if granted >= 1 then
  tokens = tokens - granted
else
  granted = 0
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- a bucket that would have refilled needs no key: it expires
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
