// envoy-check validates Envoy v3 bootstrap configs (YAML or JSON) offline, as Envoy loads
// them: every field must exist (a misspelt one fails), every typed_config Any must name a
// registered type and parse as it, and the protoc-gen-validate rules must hold, inside each
// Any too (ValidateAll does not look into an Any). Deprecated fields and enum values fail.
// Usage: envoy-check FILE... ("-": stdin). Exit status 1 if a file fails.
package main

import (
	"fmt"
	"io"
	"os"
	"regexp"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// The types that the configs' typed_config fields name (imported to register them).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dns/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

type problems []string

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Sprintf(format, a...)) }

// check applies m's validation rules, then walks m for Anys and deprecated fields.
func (p *problems) check(m proto.Message, path string) {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			p.add("%s: %v", path, err)
		}
	}
	p.walk(m.ProtoReflect(), path)
}

func (p *problems) walk(m protoreflect.Message, path string) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err != nil {
			p.add("%s: %s: %v", path, a.GetTypeUrl(), err)
		} else {
			p.check(inner, path)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := path + "." + string(fd.Name())
		if fd.Options().(*descriptorpb.FieldOptions).GetDeprecated() {
			p.add("%s: deprecated field (%s)", at, fd.FullName())
		}
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				p.walk(mv.Message(), fmt.Sprintf("%s[%q]", at, k.String()))
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				p.walk(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", at, i))
			}
		case fd.Message() != nil && !fd.IsMap():
			p.walk(v.Message(), at)
		case fd.Enum() != nil && !fd.IsList():
			ev := fd.Enum().Values().ByNumber(v.Enum())
			if ev != nil && ev.Options().(*descriptorpb.EnumValueOptions).GetDeprecated() {
				p.add("%s: deprecated enum value %s", at, ev.Name())
			}
		}
		return true
	})
}

func validate(name string) (p problems) {
	read := func() ([]byte, error) { return os.ReadFile(name) }
	if name == "-" {
		read = func() ([]byte, error) { return io.ReadAll(os.Stdin) }
	}
	data, err := read()
	if err == nil {
		data, err = yaml.YAMLToJSON(data)
	}
	var b bootstrap.Bootstrap
	if err == nil {
		err = protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(data, &b)
	}
	if err != nil { // (a position in the JSON made of the YAML would mislead: drop it)
		return problems{regexp.MustCompile(`\(line \d+:\d+\): `).ReplaceAllString(err.Error(), "")}
	}
	p.check(&b, "bootstrap")
	return p
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: envoy-check FILE... (- for stdin)")
		os.Exit(2)
	}
	status := 0
	for _, name := range os.Args[1:] {
		p := validate(name)
		for _, e := range p {
			fmt.Fprintf(os.Stderr, "%s: not a valid Envoy bootstrap: %s\n", name, e)
		}
		if len(p) > 0 {
			status = 1
		} else {
			fmt.Printf("%s: ok\n", name)
		}
	}
	os.Exit(status)
}
