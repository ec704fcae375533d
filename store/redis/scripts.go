package redis

import goredis "github.com/redis/go-redis/v9"

// Every script touches the keys of one topic only (all in the topic's hash
// slot), so each runs unchanged on Redis Cluster. Numbers that can exceed
// Lua's "%.14g" formatting (times in microseconds, seqs) are kept as the
// decimal strings they arrived as, or formatted with "%d", never with
// tostring or "..": Lua 5.1 would print 1.8e+15.

// appendHeader is how many ARGV come before the per-event triples.
const appendHeader = 12

// appendScript stores one topic's events: it assigns seqs, the epoch and
// the time, appends to the stream, updates latest-by-key, idempotency keys
// and (on one server) the activity index, trims by count and publishes the
// new events, all atomically.
//
//	KEYS[1] log (stream)   KEYS[2] meta (hash)   KEYS[3] latest (hash)
//	KEYS[4] keys (sorted set)   KEYS[5] the topics index when ARGV[9] is "i"
//	then the idempotency keys of this call's events
//	ARGV[1] epoch to use if the topic has no meta yet
//	ARGV[2] now, unix microseconds (the client's Config.Now)
//	ARGV[3] max events kept (0: no limit)
//	ARGV[4] idempotency window, microseconds
//	ARGV[5] idempotency window, milliseconds (the keys' PX expiry)
//	ARGV[6] channel to publish on ("" for none)
//	ARGV[7] publish command (PUBLISH or SPUBLISH)
//	ARGV[8] topic (for the published message and the index)
//	ARGV[9] "i": index here (KEYS[5]); "c": the index was written before
//	        (a cluster, see indexLua)
//	ARGV[10] lag, microseconds: the time is at least the server's clock
//	        less this
//	ARGV[11] on a cluster, the time the topic's index entry has (at
//	        least): a later time is refused
//	ARGV[12] on a cluster, "1" when that entry was written for this call
//	        (else a topic without meta is refused: Redis may have lost the
//	        index with it)
//	then per event: body, key ("" for none), index in KEYS of its
//	idempotency key ("0" for none)
//
// It returns {epoch, first, last, then per event: seq, time, duplicate(0|1)}.
//
// The time of the call's events is the latest of now, the topic's last
// time and the server's own clock (TIME) less the lag (0 on one server):
// times never go backwards within a topic even across clients with skewed
// clocks, and an event is never readable with a time earlier than the
// server's clock, less the lag, when it was stored; that is what
// Store.Watermark relies on. On a cluster the index entry was written
// before (indexLua), and the call is refused, nothing stored, with an
// error "HUBBUB_REINDEX <time>" when its time would pass the entry's or
// the topic is new and the entry was not written for it: the client
// writes the entry again, at or after that time, and resends the call. A missing meta means a new
// topic, or one whose data Redis lost: leftovers of the topic's other keys
// are deleted and a new epoch begins at seq 1.
// Idempotency keys hold "time seq epoch" and count only within the window
// (by the store's clock) and in the current epoch.
const appendLua = `
local m = redis.call('HMGET', KEYS[2], 'epoch', 'first', 'last', 'time')
local epoch, first, last = m[1], tonumber(m[2]), tonumber(m[3])
local tn = tonumber(ARGV[2])
if epoch and m[4] and tonumber(m[4]) > tn then
  tn = tonumber(m[4])
end
local srv = redis.call('TIME')
local sn = tonumber(srv[1]) * 1000000 + tonumber(srv[2]) - tonumber(ARGV[10])
if sn > tn then tn = sn end
if ARGV[9] == 'c' and (tn > tonumber(ARGV[11]) or (not epoch and ARGV[12] ~= '1')) then
  return redis.error_reply('HUBBUB_REINDEX ' .. string.format('%d', tn) .. ' (the topic index entry does not cover this append; nothing stored)')
end
local created = false
if not epoch then
  epoch, first, last, created = ARGV[1], 1, 0, true
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
end
local t = string.format('%d', tn)
local window = tonumber(ARGV[4])
local out = {epoch, '', ''}
local pub = {}
local n = (#ARGV - 12) / 3
for i = 0, n - 1 do
  local a = 12 + 3 * i
  local body, key, ik = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local dup = false
  if ik > 0 then
    local v = redis.call('GET', KEYS[ik])
    if v then
      local it, iseq, iep = string.match(v, '^(%d+) (%d+) (.*)$')
      if it and iep == epoch and tonumber(it) > tn - window then
        out[#out + 1] = iseq
        out[#out + 1] = it
        out[#out + 1] = 1
        dup = true
      end
    end
  end
  if not dup then
    last = last + 1
    local seq = string.format('%d', last)
    redis.call('XADD', KEYS[1], seq .. '-0', 't', t, 'b', body)
    if key ~= '' then
      if redis.call('HSET', KEYS[3], key, seq .. ' ' .. t .. ' ' .. epoch .. '\n' .. body) == 1 then
        redis.call('ZADD', KEYS[4], 0, key)
      end
    end
    if ik > 0 then
      redis.call('SET', KEYS[ik], t .. ' ' .. seq .. ' ' .. epoch, 'PX', ARGV[5])
    end
    out[#out + 1] = seq
    out[#out + 1] = t
    out[#out + 1] = 0
    pub[#pub + 1] = seq .. ' ' .. t .. ' ' .. string.format('%d', #body) .. '\n' .. body
  end
end
local maxEvents = tonumber(ARGV[3])
if maxEvents > 0 and last - first + 1 > maxEvents then
  first = last - maxEvents + 1
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', first))
end
out[2] = string.format('%d', first)
out[3] = string.format('%d', last)
if #pub > 0 or created then
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'first', out[2], 'last', out[3], 'time', t)
end
if #pub > 0 and ARGV[9] == 'i' then
  redis.call('ZADD', KEYS[5], 'GT', t, ARGV[8])
end
if #pub > 0 and ARGV[6] ~= '' then
  local topic = ARGV[8]
  redis.call(ARGV[7], ARGV[6], 'hubbub.v1\n' .. string.format('%d', #topic) .. ' ' .. topic .. epoch .. '\n' .. table.concat(pub))
end
return out
`

// indexLua writes, on a cluster, index entries for topics before their
// append scripts run (which may not touch the index's slot): an entry
// without events, or ahead of them, is harmless; an event without an entry
// would be missed by a resume. Each entry is put ahead, at the later of
// the client's and this server's clock plus ARGV[2], so that the client
// may append to the topic for a while without writing it again (appends
// that would pass it are refused, see appendLua).
//
//	KEYS[1] the topics index   ARGV[1] now, unix µs   ARGV[2] ahead, µs
//	ARGV[3..] topics
//
// It returns the entries' time, unix µs.
const indexLua = `
local srv = redis.call('TIME')
local s = tonumber(srv[1]) * 1000000 + tonumber(srv[2])
if tonumber(ARGV[1]) > s then s = tonumber(ARGV[1]) end
local st = string.format('%d', s + tonumber(ARGV[2]))
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', st, ARGV[i])
end
return st
`

// timeLua answers the clock of the server holding KEYS[1] (the topics
// index), unix µs, for Store.Watermark.
const timeLua = `
local srv = redis.call('TIME')
return string.format('%d', tonumber(srv[1]) * 1000000 + tonumber(srv[2]))
`

// activeLua pages the topics index from an entry that is still where the
// caller saw it: {score, member} pairs after (ARGV[1], ARGV[2]), at most
// ARGV[3]. It returns false when that member has moved or left the index
// (or ARGV[2] is ""), and the caller finds the place by score instead.
//
//	KEYS[1] the topics index   ARGV[1] score   ARGV[2] member   ARGV[3] limit
const activeLua = `
if ARGV[2] == '' then return false end
local sc = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not sc or tonumber(sc) ~= tonumber(ARGV[1]) then return false end
local r = redis.call('ZRANK', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], r + 1, r + tonumber(ARGV[3]), 'WITHSCORES')
`

// readScript reads a range of one topic's log together with its head, in
// one consistent view.
//
//	KEYS[1] log   KEYS[2] meta
//	ARGV[1] after   ARGV[2] before (0: none)   ARGV[3] limit   ARGV[4] "1" for newest
//
// It returns {} for an unknown topic, else {epoch, first, last[, entries]},
// entries as XRANGE returns them, oldest first.
const readLua = `
local m = redis.call('HMGET', KEYS[2], 'epoch', 'first', 'last')
if not m[1] then return {} end
local first, last = tonumber(m[2]), tonumber(m[3])
local lo, hi = tonumber(ARGV[1]) + 1, last
if lo < first then lo = first end
local before = tonumber(ARGV[2])
if before > 0 and before - 1 < hi then hi = before - 1 end
if lo > hi then return {m[1], m[2], m[3]} end
local es
if ARGV[4] == '1' then
  es = redis.call('XREVRANGE', KEYS[1], string.format('%d-0', hi), string.format('%d-0', lo), 'COUNT', ARGV[3])
  local n = #es
  for i = 1, math.floor(n / 2) do
    es[i], es[n - i + 1] = es[n - i + 1], es[i]
  end
else
  es = redis.call('XRANGE', KEYS[1], string.format('%d-0', lo), string.format('%d-0', hi), 'COUNT', ARGV[3])
end
return {m[1], m[2], m[3], es}
`

// trimScript trims one topic by age.
//
//	KEYS[1] log   KEYS[2] meta   KEYS[3] latest   KEYS[4] keys
//	ARGV[1] cutoff, unix microseconds: what is older goes
//	ARGV[2] HSCAN cursor into latest   ARGV[3] HSCAN COUNT
//
// Events are found by binary search (seqs First..Last are all present and
// their times never decrease). It returns {"gone"} when the topic has no
// meta (never written, or its data was lost), else {"ok", next cursor}: the
// caller repeats with the cursor until it is "0".
const trimLua = `
local m = redis.call('HMGET', KEYS[2], 'first', 'last')
if not m[1] then return {'gone'} end
local first, last = tonumber(m[1]), tonumber(m[2])
local cutoff = tonumber(ARGV[1])
local lo, hi = first, last + 1
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local id = string.format('%d-0', mid)
  local e = redis.call('XRANGE', KEYS[1], id, id)
  if #e == 0 or tonumber(e[1][2][2]) >= cutoff then hi = mid else lo = mid + 1 end
end
if lo > first then
  local nf = string.format('%d', lo)
  redis.call('XTRIM', KEYS[1], 'MINID', nf .. '-0')
  redis.call('HSET', KEYS[2], 'first', nf)
end
local r = redis.call('HSCAN', KEYS[3], ARGV[2], 'COUNT', ARGV[3])
local kv = r[2]
for i = 1, #kv, 2 do
  local t = string.match(kv[i + 1], '^%d+ (%d+) ')
  if t and tonumber(t) < cutoff then
    redis.call('HDEL', KEYS[3], kv[i])
    redis.call('ZREM', KEYS[4], kv[i])
  end
end
return {'ok', r[1]}
`

// trimCountScript trims one topic to its newest events, as count
// retention in the append script does.
//
//	KEYS[1] log   KEYS[2] meta
//	ARGV[1] how many of the newest events to keep
//
// It returns {} for an unknown topic, else the head after the trim,
// {epoch, first, last}.
const trimCountLua = `
local m = redis.call('HMGET', KEYS[2], 'epoch', 'first', 'last')
if not m[1] then return {} end
local first, last = tonumber(m[2]), tonumber(m[3])
local nf = last - tonumber(ARGV[1]) + 1
if nf > first then
  local s = string.format('%d', nf)
  redis.call('XTRIM', KEYS[1], 'MINID', s .. '-0')
  redis.call('HSET', KEYS[2], 'first', s)
  return {m[1], s, m[3]}
end
return {m[1], m[2], m[3]}
`

// documentsScript lists latest-by-key entries in key order.
//
//	KEYS[1] latest   KEYS[2] keys
//	ARGV[1] "(" + the key to start after, or "-"   ARGV[2] how many keys to scan
//	ARGV[3] cutoff, unix microseconds: older entries are left out ("" for none)
//
// It returns {done (1 when the scan reached the end), last key scanned,
// entries...}; it scans at most ARGV[2] keys, so a caller wanting more
// entries than it got calls again from the last key scanned.
const documentsLua = `
local ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+', 'LIMIT', 0, ARGV[2])
local cutoff = tonumber(ARGV[3])
local out = {0, ''}
if #ks < tonumber(ARGV[2]) then out[1] = 1 end
if #ks > 0 then out[2] = ks[#ks] end
for i = 1, #ks do
  local v = redis.call('HGET', KEYS[1], ks[i])
  if v then
    local t = string.match(v, '^%d+ (%d+) ')
    if not cutoff or (t and tonumber(t) >= cutoff) then out[#out + 1] = v end
  end
end
return out
`

// unindexScript removes a topic from the topics index if its score is still
// the one the sweep saw (no append touched it since) and older than the age
// cutoff (on a cluster, an entry is written before its topic's first
// events: a young entry may be of a topic about to be created).
//
//	KEYS[1] index   ARGV[1] topic   ARGV[2] score as ZSCAN returned it
//	ARGV[3] cutoff, unix µs
const unindexLua = `
local sc = redis.call('ZSCORE', KEYS[1], ARGV[1])
if sc and tonumber(sc) == tonumber(ARGV[2]) and tonumber(sc) < tonumber(ARGV[3]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`

// scripts are the store's Lua scripts, loaded at Open.
type scripts struct {
	append, read, trim, trimCount, unindex, documents, index, time, active *goredis.Script
}

func newScripts() scripts {
	return scripts{
		append:    goredis.NewScript(appendLua),
		read:      goredis.NewScript(readLua),
		trim:      goredis.NewScript(trimLua),
		trimCount: goredis.NewScript(trimCountLua),
		unindex:   goredis.NewScript(unindexLua),
		documents: goredis.NewScript(documentsLua),
		index:     goredis.NewScript(indexLua),
		time:      goredis.NewScript(timeLua),
		active:    goredis.NewScript(activeLua),
	}
}

func (sc scripts) all() []*goredis.Script {
	return []*goredis.Script{sc.append, sc.read, sc.trim, sc.trimCount, sc.unindex, sc.documents, sc.index, sc.time, sc.active}
}
