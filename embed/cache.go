package embed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// Cache is a persistent store of text embeddings keyed by model identity and
// text, so that a restart with 15,000 route utterances embeds none of them
// again. One file holds one model's vectors. It is safe for concurrent use.
//
// A missing, truncated, corrupt or foreign file is never trusted: it is
// logged, ignored and rewritten on the next Save.
type Cache struct {
	path   string
	logger *slog.Logger

	mu      sync.Mutex
	modelID string
	dim     int
	vecs    map[[32]byte][]float32
	dirty   bool
}

// cacheMagic starts every cache file; the digit is the format version.
var cacheMagic = []byte("ARCACHE1")

// OpenCache opens the cache file at path. It never fails: problems with the
// file are logged and the cache starts empty.
func OpenCache(path string, logger *slog.Logger) *Cache {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{path: path, logger: logger, vecs: map[[32]byte][]float32{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c
	case err != nil:
		logger.Warn("embedding cache unreadable; starting empty", "file", path, "err", err)
		return c
	}
	if err := c.decode(data); err != nil {
		logger.Warn("embedding cache ignored and will be rebuilt", "file", path, "err", err)
		c.modelID, c.dim, c.vecs = "", 0, map[[32]byte][]float32{}
	}
	return c
}

// decode parses the file: magic, model id, dim, count, entries (sha256 of
// the text + dim float32s), then a CRC-32 of everything before it.
func (c *Cache) decode(data []byte) error {
	if len(data) < len(cacheMagic)+4 || !bytes.Equal(data[:len(cacheMagic)], cacheMagic) {
		return errors.New("not an autorouter embedding cache")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return errors.New("checksum mismatch (truncated or corrupt)")
	}
	r := body[len(cacheMagic):]
	if len(r) < 2 {
		return errors.New("truncated header")
	}
	n := int(binary.LittleEndian.Uint16(r))
	r = r[2:]
	if len(r) < n+8 {
		return errors.New("truncated header")
	}
	modelID := string(r[:n])
	r = r[n:]
	dim, count := int(binary.LittleEndian.Uint32(r)), int(binary.LittleEndian.Uint32(r[4:]))
	r = r[8:]
	entry := 32 + 4*dim
	if dim <= 0 || dim > 1<<16 || len(r) != count*entry {
		return fmt.Errorf("size %d does not hold %d entries of dimension %d", len(r), count, dim)
	}
	// One allocation for every vector: slices into it stay valid for the
	// cache's life because entries are never modified, only added.
	all := make([]float32, count*dim)
	vecs := make(map[[32]byte][]float32, count)
	for i := 0; i < count; i++ {
		e := r[i*entry:]
		var key [32]byte
		copy(key[:], e[:32])
		v := all[i*dim : (i+1)*dim : (i+1)*dim]
		for k := range v {
			v[k] = math.Float32frombits(binary.LittleEndian.Uint32(e[32+4*k:]))
		}
		vecs[key] = v
	}
	c.modelID, c.dim, c.vecs = modelID, dim, vecs
	return nil
}

// Len is the number of cached vectors.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.vecs)
}

// EmbedAll fills dst (len(texts)*enc.Dim()) with the embedding of each text,
// from the cache where it holds one for enc's model, and through enc for the
// rest, which it then remembers. Encoders that are not Identifiers are never
// cached. progress, when not nil, is called after each batch of uncached
// texts. It returns how many texts came from the cache.
func (c *Cache) EmbedAll(ctx context.Context, enc Encoder, texts []string, dst []float32, progress ProgressFunc) (int, error) {
	dim := enc.Dim()
	if len(dst) != len(texts)*dim {
		return 0, fmt.Errorf("embedding cache: dst has %d floats, want %d", len(dst), len(texts)*dim)
	}
	id, ok := enc.(Identifier)
	if !ok {
		return 0, EmbedProgress(ctx, enc, texts, dst, progress)
	}
	modelID := id.ModelID()
	keys := make([][32]byte, len(texts))
	var missIdx []int
	c.mu.Lock()
	if c.modelID != modelID || c.dim != dim {
		if len(c.vecs) > 0 {
			c.logger.Info("embedding cache is for another model; rebuilding", "file", c.path)
		}
		c.modelID, c.dim, c.vecs, c.dirty = modelID, dim, map[[32]byte][]float32{}, true
	}
	for i, t := range texts {
		keys[i] = sha256.Sum256([]byte(t))
		if v, ok := c.vecs[keys[i]]; ok {
			copy(dst[i*dim:], v)
		} else {
			missIdx = append(missIdx, i)
		}
	}
	c.mu.Unlock()
	if len(missIdx) == 0 {
		return len(texts), nil
	}
	start := time.Now()
	buf := make([]float32, progressBatch*dim)
	missTexts := make([]string, 0, progressBatch)
	for b := 0; b < len(missIdx); b += progressBatch {
		idx := missIdx[b:min(b+progressBatch, len(missIdx))]
		missTexts = missTexts[:0]
		for _, i := range idx {
			missTexts = append(missTexts, texts[i])
		}
		out := buf[:len(idx)*dim]
		if err := enc.Embed(ctx, missTexts, out); err != nil {
			return len(texts) - len(missIdx), fmt.Errorf("embedding %d uncached texts: %w", len(missIdx), err)
		}
		c.mu.Lock()
		for j, i := range idx {
			v := append([]float32(nil), out[j*dim:(j+1)*dim]...)
			copy(dst[i*dim:], v)
			c.vecs[keys[i]] = v
		}
		c.dirty = true
		c.mu.Unlock()
		if progress != nil {
			done := b + len(idx)
			progress(done, len(missIdx), float64(done)/time.Since(start).Seconds())
		}
	}
	return len(texts) - len(missIdx), nil
}

// Save writes the cache if it changed, atomically: a crash leaves the old
// file or the new one, never half of one.
func (c *Cache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(cacheMagic) + 2 + len(c.modelID) + 8 + len(c.vecs)*(32+4*c.dim) + 4)
	b.Write(cacheMagic)
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(c.modelID))))
	b.WriteString(c.modelID)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(c.dim)))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(c.vecs))))
	var f4 [4]byte
	for key, v := range c.vecs {
		b.Write(key[:])
		for _, x := range v {
			binary.LittleEndian.PutUint32(f4[:], math.Float32bits(x))
			b.Write(f4[:])
		}
	}
	b.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(b.Bytes())))
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return fmt.Errorf("saving embedding cache: %w", err)
	}
	if err := renameio.WriteFile(c.path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("saving embedding cache %s: %w", c.path, err)
	}
	c.dirty = false
	return nil
}
