// Package ui is Warren's management web UI: static HTML, CSS and vanilla
// JavaScript embedded in the binary, so that `go run ./cmd/warren` serves it
// with no build step and no network at run time. The pages talk only to
// the management HTTP API (/api/...) with the Basic credentials the user
// logs in with; the handler here serves files and knows nothing of the API.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"sync"
)

//go:embed assets
var assets embed.FS

// Handler serves the UI: the single page at "/" (and "/index.html") and its
// assets under "/ui/". Anything else is 404, so that a mistyped API path
// outside /api does not answer with HTML.
func Handler() http.Handler { return handler() }

var handler = sync.OnceValue(func() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// The assets change with the binary, not with time; revalidate so
		// an upgraded broker never runs a stale script.
		w.Header().Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/" || r.URL.Path == "/index.html":
			http.ServeFileFS(w, r, sub, "index.html")
		case strings.HasPrefix(r.URL.Path, "/ui/") && len(r.URL.Path) > len("/ui/"):
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
})
