module github.com/dypegraph/dypegraph

go 1.26.0
