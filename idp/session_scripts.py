"""The SSO session store's Lua scripts (:mod:`idp.sessions`): each touches one session's slot.

On a Redis Cluster every key a script names shares the session's hash tag
(docs/redis-ha.md); the citizen's set is named only on one server or Sentinel.
"""

__all__ = ["GET", "CREATE", "END"]

# KEYS: 1 hash, 2 expiry zset; ARGV: now, idle, max, grace, sid, touch, cookie hash ('' = none)
# The cookie check compares SHA-256 digests of a 256-bit secret: their timing reveals nothing.
GET = """
local v = redis.call('HMGET', KEYS[1], 'created_at', 'last_seen', 'cookie')
if not v[1] then return false end
if ARGV[7] ~= '' and v[3] ~= ARGV[7] then return false end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local maxs = tonumber(ARGV[3])
local created = tonumber(v[1])
local last = tonumber(v[2])
local hard = created + maxs
if now >= hard then return {'absolute_timeout'} end
if now >= last + idle then return {'idle_timeout'} end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  local deadline = math.min(now + idle, hard)
  redis.call('EXPIRE', KEYS[1], deadline - now + tonumber(ARGV[4]))
  redis.call('ZADD', KEYS[2], deadline, ARGV[5])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
"""

# KEYS: 1 hash, 2 expiry zset, [3 citizen set: one server only]; ARGV: ttl, sid, deadline, field, value…
CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[2]) end
return 1
"""

# KEYS: 1 hash, 2 clients set, 3 expiry zset, 4 CAS tickets hash
# ARGV: sid, citizen index prefix ('' on a Cluster: the caller removes the sid from the citizen's set)
END = """
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local c = redis.call('SMEMBERS', KEYS[2])
local t = redis.call('HGETALL', KEYS[4])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
local cid = false
for i = 1, #h, 2 do
  if h[i] == 'citizen_id' then cid = h[i + 1] end
end
if cid and ARGV[2] ~= '' then redis.call('SREM', ARGV[2] .. cid, ARGV[1]) end
return {h, c, t}
"""
