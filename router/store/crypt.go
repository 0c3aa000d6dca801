package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealPrefix marks an encrypted value: enc:v1:<base64 of nonce|ciphertext>.
const sealPrefix = "enc:v1:"

// ErrWrongKey means a stored secret cannot be decrypted with the current
// key: AUTOROUTER_SALT_KEY (or the master key it defaults to) changed.
var ErrWrongKey = errors.New("store: a stored secret cannot be decrypted with the current key (AUTOROUTER_SALT_KEY or the master key changed); re-enter the secret through /model/update")

// sealer encrypts secrets at rest with AES-256-GCM.
type sealer struct{ aead cipher.AEAD }

// newSealer derives the key from secret (AUTOROUTER_SALT_KEY, else the
// master key) with SHA-256, as LiteLLM derives its own from its salt key.
func newSealer(secret string) (*sealer, error) {
	if secret == "" {
		return nil, errors.New("store: no key to encrypt secrets with; set general_settings.master_key or AUTOROUTER_SALT_KEY")
	}
	key := sha256.Sum256([]byte("autorouter-store-v1\x00" + secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("store: drawing a nonce: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), nil)
	return sealPrefix + base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(v string) (string, error) {
	if !strings.HasPrefix(v, sealPrefix) {
		return v, nil // written in clear by hand; take it as it is
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, sealPrefix))
	n := s.aead.NonceSize()
	if err != nil || len(raw) < n {
		return "", ErrWrongKey
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", ErrWrongKey
	}
	return string(plain), nil
}
