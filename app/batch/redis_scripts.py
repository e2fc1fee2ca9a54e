"""The batch store's Lua scripts: each runs atomically in Redis.

CLAIM   KEYS job, results, started, attempts   ARGV index, max_attempts, now
RECORD  KEYS job, results, items, started, attempts, active
        ARGV index, value, outcome, bytes field, line bytes, now, retention, job id
STOP    KEYS job                                ARGV status, now
"""

CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'done' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'cancelling' or status == 'expiring' then return 'stopped' end
local ttl = redis.call('PTTL', KEYS[1])
local attempts = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
if attempts > tonumber(ARGV[2]) then return 'exhausted' end
redis.call('SADD', KEYS[3], ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3])
end
return 'run'
"""

RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'duplicate' end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 'duplicate' end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('HINCRBY', KEYS[1], ARGV[4], ARGV[5])
local h = redis.call('HMGET', KEYS[1], 'total', 'succeeded', 'failed', 'cancelled', 'status')
local succeeded, failed = tonumber(h[2]), tonumber(h[3])
if succeeded + failed + tonumber(h[4]) < tonumber(h[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  return 'new'
end
local final = 'completed'
if h[5] == 'cancelling' then final = 'cancelled'
elseif h[5] == 'expiring' then final = 'expired'
elseif succeeded == 0 and failed > 0 then final = 'failed' end
redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[6])
redis.call('SREM', KEYS[6], ARGV[8])
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return 'finished'
"""

STOP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'completed' or status == 'failed' or status == 'cancelled' or status == 'expired' then
  return status
end
if status ~= 'cancelling' and status ~= 'expiring' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'stopped_at', ARGV[2])
end
return 'ok'
"""
