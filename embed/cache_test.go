package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// hashEncoder is a deterministic Encoder for cache tests: each text maps to
// a unit vector derived from its sha256. It counts the texts it embeds.
type hashEncoder struct {
	id    string
	dim   int
	calls atomic.Int64
	texts atomic.Int64
}

func (h *hashEncoder) Dim() int        { return h.dim }
func (h *hashEncoder) ModelID() string { return h.id }
func (h *hashEncoder) Embed(_ context.Context, texts []string, dst []float32) error {
	h.calls.Add(1)
	h.texts.Add(int64(len(texts)))
	for i, t := range texts {
		sum := sha256.Sum256([]byte(t))
		v := dst[i*h.dim : (i+1)*h.dim]
		for k := range v {
			v[k] = float32(int(sum[k%32])-128) + float32(k)
		}
		normalizeInto(v, v)
	}
	return nil
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "utterance number " + string(rune('a'+i%26)) + string(binary.LittleEndian.AppendUint32(nil, uint32(i)))
	}
	return out
}

func TestCacheRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.bin")
	enc := &hashEncoder{id: "m1", dim: 8}
	in := texts(200)
	want := make([]float32, len(in)*8)
	c := OpenCache(path, nil)
	hits, err := c.EmbedAll(context.Background(), enc, in, want, nil)
	if err != nil || hits != 0 {
		t.Fatalf("first run: hits %d err %v", hits, err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	before := enc.texts.Load()
	got := make([]float32, len(in)*8)
	hits, err = OpenCache(path, nil).EmbedAll(context.Background(), enc, in, got, nil)
	if err != nil || hits != 200 || enc.texts.Load() != before {
		t.Fatalf("after reopen: hits %d, embedded %d more, err %v", hits, enc.texts.Load()-before, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("vector %d differs after a round trip", i/8)
		}
	}
	// A new text embeds only itself.
	more := append(in[:10:10], "brand new")
	if hits, _ := OpenCache(path, nil).EmbedAll(context.Background(), enc, more, make([]float32, len(more)*8), nil); hits != 10 {
		t.Fatalf("hits = %d, want 10", hits)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestCacheIgnoresBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	enc := &hashEncoder{id: "m1", dim: 8}
	in := texts(20)
	c := OpenCache(good, nil)
	c.EmbedAll(context.Background(), enc, in, make([]float32, len(in)*8), nil)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		enc  *hashEncoder
	}{
		{"truncated", data[:len(data)/2], enc},
		{"bit flip", flipped, enc},
		{"garbage", []byte("definitely not a cache"), enc},
		{"empty", nil, enc},
		{"other model", data, &hashEncoder{id: "m2", dim: 8}},
		{"other dimension", data, &hashEncoder{id: "m1", dim: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".bin")
			os.WriteFile(path, tc.data, 0o644)
			c := OpenCache(path, nil)
			hits, err := c.EmbedAll(context.Background(), tc.enc, in, make([]float32, len(in)*tc.enc.dim), nil)
			if err != nil || hits != 0 {
				t.Fatalf("hits %d err %v: a bad or foreign cache must not be trusted", hits, err)
			}
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
			if hits, _ := OpenCache(path, nil).EmbedAll(context.Background(), tc.enc, in, make([]float32, len(in)*tc.enc.dim), nil); hits != len(in) {
				t.Fatalf("rebuilt cache gave %d hits", hits)
			}
		})
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := OpenCache(filepath.Join(t.TempDir(), "c.bin"), nil)
	enc := &hashEncoder{id: "m", dim: 8}
	in := texts(100)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, len(in)*8)
			if _, err := c.EmbedAll(context.Background(), enc, in, dst, nil); err != nil {
				t.Error(err)
			}
			for i := 0; i < len(in); i++ {
				var n float64
				for _, x := range dst[i*8 : (i+1)*8] {
					n += float64(x) * float64(x)
				}
				if math.Abs(n-1) > 1e-4 {
					t.Errorf("vector %d not filled", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkCacheLoad15k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "c.bin")
	enc := &hashEncoder{id: "m", dim: 384}
	in := texts(15000)
	c := OpenCache(path, nil)
	c.EmbedAll(context.Background(), enc, in, make([]float32, len(in)*384), nil)
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if OpenCache(path, nil).Len() != 15000 {
			b.Fatal("cache did not load")
		}
	}
}
