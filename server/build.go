package server

import "github.com/hubbub/hubbub/internal/buildinfo"

// registerBuildInfo exports hubbub_build_info{version,revision,goversion} 1,
// the usual Prometheus way to name the running build (join it on instance
// to label other series, or alert on mixed versions during an upgrade).
func registerBuildInfo(m *metrics, b buildinfo.Info) {
	m.gaugeFunc("hubbub_build_info", "Always 1; the labels name the running build (revision is empty when unknown).",
		func() float64 { return 1 }, "version", b.Version, "revision", b.Revision, "goversion", b.GoVersion)
}
