package redis

import goredis "github.com/redis/go-redis/v9"

// Every script runs on the keys of one hash tag (one kind, or the kinds
// sharing its tag): KEYS[1] routes it to its slot, and the other keys it
// touches are built inside the script from ARGV[1], the tag's base
// "<P>:tasks:{<tag>}:", so they are in the same slot (see the package doc).
//
// Every script's ARGV starts with the same header:
//
//	ARGV[1] base   ARGV[2] channel to PUBLISH readiness on ("" for none)
//	ARGV[3] the calling Queue's node id (so it can ignore its own messages)
//
// Times are 16-hex-digit strings (see encTime) and are only compared, never
// computed with: Lua numbers cannot hold unix nanoseconds exactly. lt
// compares two such strings (or two ids) 8 digits at a time, which a Lua
// number holds exactly, so the server's collation locale plays no part.
const libLua = `
local base, chan, node = ARGV[1], ARGV[2], ARGV[3]
local notified = 0
local told = {}

local function lt(a, b)
  for i = 1, #a, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x < y end
  end
  return false
end

local function tkey(id) return base .. 't:' .. id end
local function kkey(kind, s) return base .. kind .. ':' .. s end

local function notify(kind)
  notified = 1
  if chan ~= '' and not told[kind] then
    told[kind] = true
    redis.call('PUBLISH', chan, node .. ' ' .. kind)
  end
end

local function load(id)
  local v = redis.call('HMGET', tkey(id), 'k', 'y', 's', 'a', 'e', 'r', 'l')
  if not v[1] then return nil end
  return {id = id, kind = v[1], key = v[2] or '', s = v[3], a = tonumber(v[4]) or 0,
    e = v[5] or '', r = v[6], l = v[7]}
end

local function unpend(t)
  redis.call('ZREM', kkey(t.kind, 'due'), t.r .. t.id)
  if t.key ~= '' then
    local pk = kkey(t.kind, 'pending')
    if redis.call('HGET', pk, t.key) == t.id then redis.call('HDEL', pk, t.key) end
  end
end

local function unrun(t)
  if t.l then redis.call('ZREM', kkey(t.kind, 'lease'), t.l .. t.id) end
  if t.key ~= '' then
    local rk = kkey(t.kind, 'running')
    if redis.call('HGET', rk, t.key) == t.id then redis.call('HDEL', rk, t.key) end
    if redis.call('HEXISTS', kkey(t.kind, 'pending'), t.key) == 1 then notify(t.kind) end
  end
end

local function addPending(t)
  redis.call('ZADD', kkey(t.kind, 'due'), 0, t.r .. t.id)
  if t.key ~= '' then redis.call('HSET', kkey(t.kind, 'pending'), t.key, t.id) end
  redis.call('HSET', tkey(t.id), 's', '1', 'a', t.a, 'e', t.e, 'r', t.r)
  redis.call('HDEL', tkey(t.id), 'l')
  notify(t.kind)
end

local function move(t, r)
  redis.call('ZREM', kkey(t.kind, 'due'), t.r .. t.id)
  t.r = r
  redis.call('ZADD', kkey(t.kind, 'due'), 0, r .. t.id)
  redis.call('HSET', tkey(t.id), 'r', r)
  notify(t.kind)
end

-- pendingOf returns the pending task holding (kind, key), dropping an entry
-- that names no pending task (cannot happen while the invariants hold).
local function pendingOf(kind, key)
  local pk = kkey(kind, 'pending')
  local id = redis.call('HGET', pk, key)
  if not id then return nil end
  local o = load(id)
  if o and o.s == '1' then return o end
  redis.call('HDEL', pk, key)
  return nil
end

-- requeue makes the running task t pending at r with Attempt+1, or merges
-- it into the pending task holding its key.
local function requeue(t, r, msg)
  unrun(t)
  t.a = t.a + 1
  t.e = msg
  if t.key ~= '' then
    local o = pendingOf(t.kind, t.key)
    if o then
      redis.call('DEL', tkey(t.id))
      redis.call('HSET', tkey(o.id), 'a', math.max(o.a, t.a), 'e', msg)
      if lt(r, o.r) then move(o, r) end
      return
    end
  end
  t.r = r
  addPending(t)
end
`

// enqueueLua adds a task, or finds the pending task holding its key.
//
//	KEYS[1] the kind's due set
//	ARGV[4] kind   ARGV[5] key   ARGV[6] payload   ARGV[7] runAt   ARGV[8] id
//
// The proposed id is used if it sorts after the kind's last id; otherwise
// the script takes the next one after the last id, so a kind's ids increase
// across nodes and restarts and never collide. It returns {1, id, notified,
// fresh} when it added the task (fresh is 1 if the kind had no last id: its
// first task, or Redis lost its data), or {0, id of the pending task,
// notified, 0} when deduplicated.
const enqueueLua = `
local kind, key, payload, r, id = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if key ~= '' then
  local o = pendingOf(kind, key)
  if o then
    if lt(r, o.r) then move(o, r) end
    return {0, o.id, notified, 0}
  end
end
local lk = kkey(kind, 'lastid')
local last = redis.call('GET', lk)
if last and not lt(last, id) then
  -- Another node's clock is ahead, or enqueues of this node arrived out of
  -- order: take the next id after the last (time part + 1ns, same tag).
  local hi, lo = tonumber(string.sub(last, 1, 8), 16), tonumber(string.sub(last, 9, 16), 16) + 1
  if lo == 4294967296 then hi, lo = hi + 1, 0 end
  id = string.format('%08x%08x', hi, lo) .. string.sub(id, 17)
end
redis.call('SET', lk, id)
redis.call('HSET', tkey(id), 'k', kind, 'y', key, 'p', payload)
addPending({id = id, kind = kind, key = key, r = r, a = 0, e = ''})
local fresh = 0
if not last then fresh = 1 end
return {1, id, notified, fresh}
`

// claimLua releases the ended leases of a kind, then leases up to n due
// tasks whose key no running task holds, in due order.
//
//	KEYS[1] the kind's due set
//	ARGV[4] kind   ARGV[5] now+1ns   ARGV[6] lease end   ARGV[7] n
//
// It returns {notified, then per task: id, key, payload, attempt,
// last error, runAt}.
const claimLua = `
local kind, bound, untl, n = ARGV[4], '(' .. ARGV[5], ARGV[6], tonumber(ARGV[7])
local dk, lk, rk = kkey(kind, 'due'), kkey(kind, 'lease'), kkey(kind, 'running')
for _, m in ipairs(redis.call('ZRANGEBYLEX', lk, '-', bound)) do
  local t = load(string.sub(m, 17))
  if t and t.s == '2' and t.l .. t.id == m then
    requeue(t, t.r, 'lease expired')
  else
    redis.call('ZREM', lk, m)
  end
end
local out = {0}
local got, from = 0, '-'
while got < n do
  local ms = redis.call('ZRANGEBYLEX', dk, from, bound, 'LIMIT', 0, n - got)
  if #ms == 0 then break end
  for _, m in ipairs(ms) do
    from = '(' .. m
    local t = load(string.sub(m, 17))
    if not t or t.s ~= '1' then
      redis.call('ZREM', dk, m)
    elseif t.key == '' or redis.call('HEXISTS', rk, t.key) == 0 then
      unpend(t)
      redis.call('ZADD', lk, 0, untl .. t.id)
      if t.key ~= '' then redis.call('HSET', rk, t.key, t.id) end
      redis.call('HSET', tkey(t.id), 's', '2', 'l', untl)
      local p = redis.call('HGET', tkey(t.id), 'p') or ''
      out[#out + 1] = t.id
      out[#out + 1] = t.key
      out[#out + 1] = p
      out[#out + 1] = t.a
      out[#out + 1] = t.e
      out[#out + 1] = t.r
      got = got + 1
    end
  end
end
out[1] = notified
return out
`

// nextDueLua returns the earliest of the first lease end of a kind and the
// RunAt of its first pending task not waiting for a run of its key, or
// false when there is neither.
//
//	KEYS[1] the kind's due set   ARGV[4] kind
const nextDueLua = `
local kind = ARGV[4]
local rk = kkey(kind, 'running')
local best
local l = redis.call('ZRANGEBYLEX', kkey(kind, 'lease'), '-', '+', 'LIMIT', 0, 1)
if l[1] then best = string.sub(l[1], 1, 16) end
local from = '-'
while true do
  local ms = redis.call('ZRANGEBYLEX', kkey(kind, 'due'), from, '+', 'LIMIT', 0, 64)
  if #ms == 0 then break end
  local done = false
  for _, m in ipairs(ms) do
    local r = string.sub(m, 1, 16)
    if best and not lt(r, best) then done = true break end
    local key = redis.call('HGET', tkey(string.sub(m, 17)), 'y')
    if not key or key == '' or redis.call('HEXISTS', rk, key) == 0 then
      best = r
      done = true
      break
    end
    from = '(' .. m
  end
  if done then break end
end
return best or false
`

// The scripts on one task return {status, notified, kind}: status is "ok",
// "nf" (no such task) or "nr" (not running).
//
//	KEYS[1] the task's hash   ARGV[4] id

// completeLua removes a running task.
const completeLua = `
local t = load(ARGV[4])
if not t then return {'nf', 0} end
if t.s ~= '2' then return {'nr', 0} end
unrun(t)
redis.call('DEL', tkey(t.id))
return {'ok', notified, t.kind}
`

// retryLua requeues a running task: ARGV[5] runAt, ARGV[6] error message.
const retryLua = `
local t = load(ARGV[4])
if not t then return {'nf', 0} end
if t.s ~= '2' then return {'nr', 0} end
requeue(t, ARGV[5], ARGV[6])
return {'ok', notified, t.kind}
`

// extendLua moves the lease end of a running task to ARGV[5].
const extendLua = `
local t = load(ARGV[4])
if not t then return {'nf', 0} end
if t.s ~= '2' then return {'nr', 0} end
local lk = kkey(t.kind, 'lease')
if t.l then redis.call('ZREM', lk, t.l .. t.id) end
redis.call('ZADD', lk, 0, ARGV[5] .. t.id)
redis.call('HSET', tkey(t.id), 'l', ARGV[5])
return {'ok', 0, t.kind}
`

// deadLua moves a pending or running task to the dead-letter set: ARGV[5]
// reason, ARGV[6] now. A dead task stays as it is.
const deadLua = `
local t = load(ARGV[4])
if not t then return {'nf', 0} end
if t.s == '3' then return {'ok', 0, t.kind} end
if t.s == '2' then unrun(t) else unpend(t) end
redis.call('ZADD', kkey(t.kind, 'dead'), 0, t.id)
redis.call('HSET', tkey(t.id), 's', '3', 'e', ARGV[5], 'x', ARGV[6])
redis.call('HDEL', tkey(t.id), 'l')
return {'ok', notified, t.kind}
`

// countsLua returns {pending, running, dead} of kind ARGV[4], consistently.
//
//	KEYS[1] the kind's due set
const countsLua = `
local kind = ARGV[4]
return {redis.call('ZCARD', kkey(kind, 'due')), redis.call('ZCARD', kkey(kind, 'lease')),
  redis.call('ZCARD', kkey(kind, 'dead'))}
`

// scripts are the queue's Lua scripts, loaded at Open.
type scripts struct {
	enqueue, claim, nextDue, complete, retry, extend, dead, counts *goredis.Script
}

func newScripts() scripts {
	s := func(body string) *goredis.Script { return goredis.NewScript(libLua + body) }
	return scripts{
		enqueue:  s(enqueueLua),
		claim:    s(claimLua),
		nextDue:  s(nextDueLua),
		complete: s(completeLua),
		retry:    s(retryLua),
		extend:   s(extendLua),
		dead:     s(deadLua),
		counts:   s(countsLua),
	}
}

func (s scripts) all() []*goredis.Script {
	return []*goredis.Script{s.enqueue, s.claim, s.nextDue, s.complete, s.retry, s.extend, s.dead, s.counts}
}
