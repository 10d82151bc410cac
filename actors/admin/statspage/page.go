package statspage

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed index.html
var page []byte

// etag identifies this build's page, so that a browser revalidating (Cache-Control: no-cache)
// gets a 304 instead of the whole page again.
var etag = func() string {
	sum := sha256.Sum256(page)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// contentSecurityPolicy lets the page load nothing but from its own origin (and data: images,
// its favicon): no external fonts, scripts, styles or connections, and no framing by another
// site.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'unsafe-inline'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the stats page at whatever path it is mounted on (the page reads api/stats
// relative to its own URL). It answers GET and HEAD; other methods get 405.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("ETag", etag)
	// ServeContent answers HEAD without a body, and conditional and range requests.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page))
}
