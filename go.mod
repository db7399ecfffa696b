module github.com/dypegraph/dypegraph

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/dominikbraun/graph v0.23.0 // indirect
	github.com/goccy/go-json v0.12.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/image v0.48.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
