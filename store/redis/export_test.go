package redis

// Crash abandons s as a crashed process would: its connections are closed
// at once, without waiting for anything. What Redis acknowledged stays.
func Crash(s *Store) { _ = s.rdb.Close() }
