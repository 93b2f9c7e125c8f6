package main

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Config is the subset of Consul's agent configuration that matters for LAN gossip.
type Config struct {
	NodeName              string
	Datacenter            string
	DataDir               string
	Server                bool
	BindAddr              string
	SerfLANPort           int
	HTTPPort              int
	ServerPort            int
	RetryJoin             []string
	Encrypt               string
	EncryptVerifyIncoming bool
	EncryptVerifyOutgoing bool
	DisableKeyringFile    bool
	LeaveOnTerminate      bool
}

var knownTop = map[string]bool{
	"node_name": true, "datacenter": true, "data_dir": true, "server": true, "bind_addr": true,
	"ports": true, "retry_join": true, "encrypt": true, "encrypt_verify_incoming": true,
	"encrypt_verify_outgoing": true, "disable_keyring_file": true, "leave_on_terminate": true,
}

var knownPorts = map[string]bool{"serf_lan": true, "http": true, "server": true}

// configSources expands -config-dir / -config-file flags, in flag order, into a
// list of files. Directories contribute their *.json files in lexical order.
func configSources(sources []source) ([]string, error) {
	var files []string
	for _, s := range sources {
		if !s.dir {
			files = append(files, s.path)
			continue
		}
		entries, err := ioutil.ReadDir(s.path)
		if err != nil {
			return nil, fmt.Errorf("Error reading config dir %q: %s", s.path, err)
		}
		var names []string
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(s.path, n))
		}
	}
	return files, nil
}

// mergeInto merges src into dst like Consul's config merge: objects are merged
// recursively, lists are appended, anything else is replaced by the later value.
func mergeInto(dst, src map[string]interface{}) {
	for k, v := range src {
		switch sv := v.(type) {
		case map[string]interface{}:
			if dv, ok := dst[k].(map[string]interface{}); ok {
				mergeInto(dv, sv)
				continue
			}
			cp := map[string]interface{}{}
			mergeInto(cp, sv)
			dst[k] = cp
		case []interface{}:
			if dv, ok := dst[k].([]interface{}); ok {
				dst[k] = append(append([]interface{}{}, dv...), sv...)
				continue
			}
			dst[k] = append([]interface{}{}, sv...)
		default:
			dst[k] = v
		}
	}
}

func loadConfig(sources []source, warn func(string, ...interface{})) (*Config, error) {
	files, err := configSources(sources)
	if err != nil {
		return nil, err
	}
	merged := map[string]interface{}{}
	for _, f := range files {
		data, err := ioutil.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("Error reading %q: %s", f, err)
		}
		var m map[string]interface{}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("Error parsing %s: %s", f, err)
		}
		for k, v := range m {
			if !knownTop[k] {
				warn("[WARN]  agent: config key %q in %s is not supported by the lab agent; ignored", k, f)
			}
			if k == "ports" {
				if pm, ok := v.(map[string]interface{}); ok {
					for pk := range pm {
						if !knownPorts[pk] {
							warn("[WARN]  agent: config key %q in %s is not supported by the lab agent; ignored", "ports."+pk, f)
						}
					}
				}
			}
		}
		mergeInto(merged, m)
	}

	c := &Config{
		Datacenter:            "dc1",
		BindAddr:              "127.0.0.1",
		SerfLANPort:           8301,
		HTTPPort:              8500,
		ServerPort:            8300,
		EncryptVerifyIncoming: true,
		EncryptVerifyOutgoing: true,
		LeaveOnTerminate:      true,
	}
	getStr := func(m map[string]interface{}, k string, dst *string) error {
		if v, ok := m[k]; ok && v != nil {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s: expected a string, got %T", k, v)
			}
			*dst = s
		}
		return nil
	}
	getBool := func(m map[string]interface{}, k string, dst *bool) error {
		if v, ok := m[k]; ok && v != nil {
			switch b := v.(type) {
			case bool:
				*dst = b
			case string:
				switch strings.ToLower(b) {
				case "true":
					*dst = true
				case "false":
					*dst = false
				default:
					return fmt.Errorf("%s: expected a bool, got %q", k, b)
				}
			default:
				return fmt.Errorf("%s: expected a bool, got %T", k, v)
			}
		}
		return nil
	}
	getInt := func(m map[string]interface{}, k string, dst *int) error {
		if v, ok := m[k]; ok && v != nil {
			f, ok := v.(float64)
			if !ok {
				return fmt.Errorf("ports.%s: expected a number, got %T", k, v)
			}
			*dst = int(f)
		}
		return nil
	}
	for _, e := range []error{
		getStr(merged, "node_name", &c.NodeName),
		getStr(merged, "datacenter", &c.Datacenter),
		getStr(merged, "data_dir", &c.DataDir),
		getStr(merged, "bind_addr", &c.BindAddr),
		getStr(merged, "encrypt", &c.Encrypt),
		getBool(merged, "server", &c.Server),
		getBool(merged, "encrypt_verify_incoming", &c.EncryptVerifyIncoming),
		getBool(merged, "encrypt_verify_outgoing", &c.EncryptVerifyOutgoing),
		getBool(merged, "disable_keyring_file", &c.DisableKeyringFile),
		getBool(merged, "leave_on_terminate", &c.LeaveOnTerminate),
	} {
		if e != nil {
			return nil, e
		}
	}
	if pv, ok := merged["ports"]; ok && pv != nil {
		pm, ok := pv.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("ports: expected an object")
		}
		for _, e := range []error{
			getInt(pm, "serf_lan", &c.SerfLANPort),
			getInt(pm, "http", &c.HTTPPort),
			getInt(pm, "server", &c.ServerPort),
		} {
			if e != nil {
				return nil, e
			}
		}
	}
	if rj, ok := merged["retry_join"]; ok && rj != nil {
		switch l := rj.(type) {
		case []interface{}:
			for _, x := range l {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("retry_join: expected strings")
				}
				c.RetryJoin = append(c.RetryJoin, s)
			}
		case string:
			c.RetryJoin = append(c.RetryJoin, l)
		default:
			return nil, fmt.Errorf("retry_join: expected a list of strings")
		}
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node_name cannot be empty")
		}
		c.NodeName = h
	}
	if c.DataDir == "" {
		return nil, fmt.Errorf("data_dir cannot be empty")
	}
	return c, nil
}
