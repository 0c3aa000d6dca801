package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/upstream"
)

// RedisFromSettings connects to the Redis server router_settings names
// (LiteLLM's redis_url, or redis_host, redis_port and redis_password); nil
// when none is set.
func RedisFromSettings(ctx context.Context, rs config.RouterSettings) (*redis.Client, error) {
	var opts *redis.Options
	switch {
	case rs.RedisURL != "":
		o, err := redis.ParseURL(rs.RedisURL.Value())
		if err != nil {
			return nil, errors.New("router_settings.redis_url is not a valid redis:// URL (not shown: it may hold a password)")
		}
		opts = o
	case rs.RedisHost != "":
		port := rs.RedisPort
		if port == 0 {
			port = 6379
		}
		opts = &redis.Options{Addr: net.JoinHostPort(rs.RedisHost, strconv.Itoa(port)), Password: rs.RedisPassword.Value()}
	default:
		return nil, nil
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 3*time.Second, 2*time.Second, 2*time.Second
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	return c, nil
}

// Redis keys and channel of shared cooldowns.
const (
	cooldownChannel = "autorouter:cooldowns"
	cooldownKey     = "autorouter:cooldown:"
)

// SharedCooldowns carries deployment cooldowns between replicas through
// Redis: a cooldown one replica starts is published (and kept as a key
// that expires with it, for replicas that start later), and every replica
// applies what the others publish. Reads stay local: a request never waits
// on Redis.
type SharedCooldowns struct {
	rdb    *redis.Client
	cool   *upstream.Cooldowns
	logger *slog.Logger
	out    chan shared
}

type shared struct {
	id    string
	until time.Time
}

// ShareCooldowns starts sharing cool through rdb until ctx ends and hooks
// itself into cool.
func ShareCooldowns(ctx context.Context, rdb *redis.Client, cool *upstream.Cooldowns, logger *slog.Logger) *SharedCooldowns {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &SharedCooldowns{rdb: rdb, cool: cool, logger: logger, out: make(chan shared, 256)}
	sub := rdb.Subscribe(ctx, cooldownChannel)
	go s.publishLoop(ctx)
	go s.subscribeLoop(ctx, sub)
	s.loadExisting(ctx)
	cool.SetShared(s)
	return s
}

// Publish implements upstream.Shared; it never blocks.
func (s *SharedCooldowns) Publish(id string, until time.Time) {
	select {
	case s.out <- shared{id, until}:
	default:
		s.logger.Warn("redis: cooldown not shared, the publish queue is full", "deployment", id)
	}
}

func (s *SharedCooldowns) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.out:
			ttl := time.Until(c.until)
			if ttl <= 0 {
				continue
			}
			msg := c.id + " " + strconv.FormatInt(c.until.UnixMilli(), 10)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			pipe := s.rdb.TxPipeline()
			pipe.Set(pctx, cooldownKey+c.id, c.until.UnixMilli(), ttl)
			pipe.Publish(pctx, cooldownChannel, msg)
			_, err := pipe.Exec(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.logger.Warn("redis: could not share a cooldown; other replicas will find out themselves", "deployment", c.id, "err", err)
			}
		}
	}
}

func (s *SharedCooldowns) subscribeLoop(ctx context.Context, sub *redis.PubSub) {
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			id, ms, found := strings.Cut(m.Payload, " ")
			if !found {
				continue
			}
			if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
				s.cool.Apply(id, time.UnixMilli(v))
			}
		}
	}
}

// loadExisting applies the cooldowns still running when this replica starts.
func (s *SharedCooldowns) loadExisting(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	it := s.rdb.Scan(sctx, 0, cooldownKey+"*", 256).Iterator()
	for it.Next(sctx) {
		key := it.Val()
		v, err := s.rdb.Get(sctx, key).Int64()
		if err == nil {
			s.cool.Apply(strings.TrimPrefix(key, cooldownKey), time.UnixMilli(v))
		}
	}
}

// SessionStore shares session-affinity decisions between replicas through
// Redis (router.SessionStore): keys expire with the session's TTL, reads
// wait at most 50 ms and writes never hold a request.
type SessionStore struct {
	rdb    *redis.Client
	logger *slog.Logger
}

// NewSessionStore returns a session store on rdb.
func NewSessionStore(rdb *redis.Client, logger *slog.Logger) *SessionStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SessionStore{rdb: rdb, logger: logger}
}

const sessionPrefix = "autorouter:session:"

// Get returns a session's decision, if another replica stored one.
func (s *SessionStore) Get(ctx context.Context, key string) ([]byte, bool) {
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	b, err := s.rdb.Get(ctx, sessionPrefix+key).Bytes()
	if err != nil {
		return nil, false
	}
	return b, true
}

// Set stores a session's decision in the background.
func (s *SessionStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.rdb.Set(ctx, sessionPrefix+key, value, ttl).Err(); err != nil {
			s.logger.Warn("redis: could not share a session decision", "err", err)
		}
	}()
}
