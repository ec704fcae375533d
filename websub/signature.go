package websub

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
)

// SignatureHeader is the header deliveries are signed in.
const SignatureHeader = "X-Hub-Signature"

func hashFunc(alg string) func() hash.Hash {
	switch alg {
	case "sha1":
		return sha1.New
	case "sha256":
		return sha256.New
	case "sha384":
		return sha512.New384
	case "sha512":
		return sha512.New
	}
	return nil
}

func validAlgorithm(alg string) bool { return hashFunc(alg) != nil }

// Sign returns the X-Hub-Signature value for body: "ALG=" followed by the
// lowercase hex HMAC of body with secret. alg must be sha1, sha256, sha384
// or sha512; Sign returns "" for any other.
func Sign(alg, secret string, body []byte) string {
	hf := hashFunc(alg)
	if hf == nil {
		return ""
	}
	m := hmac.New(hf, []byte(secret))
	m.Write(body)
	return alg + "=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is a correct signature of body
// with secret, whatever supported algorithm it names.
func VerifySignature(header, secret string, body []byte) bool {
	alg, _, ok := strings.Cut(header, "=")
	if !ok || !validAlgorithm(alg) {
		return false
	}
	return hmac.Equal([]byte(header), []byte(Sign(alg, secret, body)))
}
