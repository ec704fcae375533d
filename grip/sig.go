package grip

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SigIssuer is the iss of Grip-Sig, Pushpin's default sig_iss, so origins
// configured for Pushpin accept hubbub's signatures unchanged.
const SigIssuer = "pushpin"

// sigLifetime is how long a Grip-Sig is valid. It only has to outlive
// the origin's handling of one request; short, so a signature an origin
// leaks (logs) is soon worthless.
const sigLifetime = 5 * time.Minute

// sign returns a fresh Grip-Sig: an HS256 JWT with iss "pushpin" and exp
// now+sigLifetime, signed with the configured key. The origin (e.g.
// @fanoutio/serve-grip with the same key) checks it to tell requests that
// came through the proxy from direct ones, and honours GRIP instructions
// only on those.
func (p *Proxy) sign() (string, error) {
	now := p.cfg.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": SigIssuer,
		"exp": now.Add(sigLifetime).Unix(),
	})
	s, err := tok.SignedString(p.cfg.SigKey)
	if err != nil {
		return "", fmt.Errorf("sign Grip-Sig: %w", err)
	}
	return s, nil
}

// VerifySig checks a Grip-Sig with key as an origin would: HS256 only,
// unexpired, issued by "pushpin". For tests and tools.
func VerifySig(sig string, key []byte, now time.Time) error {
	_, err := jwt.Parse(sig, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(SigIssuer),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return fmt.Errorf("Grip-Sig: %w", err)
	}
	return nil
}
