package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"

	multierror "github.com/hashicorp/go-multierror"
	"github.com/hashicorp/serf/serf"
)

type httpError struct {
	code   int
	reason string
}

func (e httpError) Error() string { return e.reason }

type handlerFunc func(w http.ResponseWriter, r *http.Request) (interface{}, error)

// wrap mimics Consul's agent/http.go wrap: JSON body on success (nothing when
// the object is nil), plain text on error, 500 for unknown errors.
func (a *Agent) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		obj, err := h(w, r)
		if err != nil {
			code := http.StatusInternalServerError
			if he, ok := err.(httpError); ok {
				code = he.code
			}
			if code == http.StatusInternalServerError {
				a.logf("[ERROR] agent.http: Request error: method=%s url=%s error=%q", r.Method, r.URL.String(), err.Error())
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			fmt.Fprint(w, err.Error())
			return
		}
		if obj == nil {
			return
		}
		var buf []byte
		if _, ok := r.URL.Query()["pretty"]; ok {
			buf, err = json.MarshalIndent(obj, "", "    ")
			buf = append(buf, '\n')
		} else {
			buf, err = json.Marshal(obj)
		}
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf)
	}
}

func methods(allowed ...string) func(handlerFunc) handlerFunc {
	return func(h handlerFunc) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
			for _, m := range allowed {
				if r.Method == m {
					return h(w, r)
				}
			}
			if r.Method == "OPTIONS" {
				w.Header().Set("Allow", strings.Join(allowed, ","))
				return nil, nil
			}
			w.Header().Set("Allow", strings.Join(allowed, ","))
			return nil, httpError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method)}
		}
	}
}

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/agent/members", a.wrap(methods("GET")(a.agentMembers)))
	mux.HandleFunc("/v1/agent/self", a.wrap(methods("GET")(a.agentSelf)))
	mux.HandleFunc("/v1/agent/leave", a.wrap(methods("PUT", "GET")(a.agentLeave)))
	mux.HandleFunc("/v1/operator/keyring", a.wrap(methods("GET", "POST", "PUT", "DELETE")(a.operatorKeyring)))
	mux.HandleFunc("/v1/status/leader", a.wrap(methods("GET")(a.statusLeader)))
	mux.HandleFunc("/v1/status/peers", a.wrap(methods("GET")(a.statusPeers)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	return mux
}

func (a *Agent) agentMembers(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if r.URL.Query().Get("wan") != "" {
		if seg := r.URL.Query().Get("segment"); seg != "" && seg != "_all" {
			return nil, httpError{http.StatusBadRequest, "Cannot provide a segment with wan=true"}
		}
		if a.cfg.Server {
			return []serf.Member{}, nil
		}
		var none []serf.Member
		return none, nil
	}
	return a.serf.Members(), nil
}

func (a *Agent) aliveServers() []serf.Member {
	var out []serf.Member
	for _, m := range a.serf.Members() {
		if m.Status == serf.StatusAlive && m.Tags["role"] == "consul" && m.Tags["dc"] == a.cfg.Datacenter {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func serverAddr(m serf.Member) string {
	return fmt.Sprintf("%s:%s", m.Addr.String(), m.Tags["port"])
}

// leader is the lexically-first alive server: the lab has no raft.
func (a *Agent) leader() (string, string) {
	s := a.aliveServers()
	if len(s) == 0 {
		return "", ""
	}
	return s[0].Name, serverAddr(s[0])
}

func (a *Agent) statusLeader(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	_, addr := a.leader()
	return addr, nil
}

func (a *Agent) statusPeers(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	out := []string{}
	for _, m := range a.aliveServers() {
		out = append(out, serverAddr(m))
	}
	return out, nil
}

func (a *Agent) agentLeave(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	select {
	case leaveRequested <- struct{}{}:
	default:
	}
	return nil, nil
}

func (a *Agent) agentSelf(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	c := a.cfg
	version := labVersion
	if a.apiShape == "1.11" {
		version = "1.11.11-lab"
	}
	config := map[string]interface{}{
		"Datacenter":        c.Datacenter,
		"PrimaryDatacenter": c.Datacenter,
		"NodeName":          c.NodeName,
		"NodeID":            a.nodeID,
		"Revision":          labRevision,
		"Server":            c.Server,
		"Version":           version,
		"BuildDate":         buildDate,
	}
	if a.apiShape == "1.11" {
		delete(config, "BuildDate")
	}
	retryJoin := c.RetryJoin
	if retryJoin == nil {
		retryJoin = []string{}
	}
	debug := map[string]interface{}{
		"Datacenter":              c.Datacenter,
		"PrimaryDatacenter":       c.Datacenter,
		"NodeName":                c.NodeName,
		"NodeID":                  a.nodeID,
		"DataDir":                 c.DataDir,
		"ServerMode":              c.Server,
		"ServerPort":              c.ServerPort,
		"SerfBindAddrLAN":         fmt.Sprintf("%s:%d", c.BindAddr, c.SerfLANPort),
		"SerfAdvertiseAddrLAN":    fmt.Sprintf("%s:%d", c.BindAddr, c.SerfLANPort),
		"SerfPortLAN":             c.SerfLANPort,
		"HTTPPort":                c.HTTPPort,
		"RetryJoinLAN":            retryJoin,
		"RetryJoinIntervalLAN":    "1s",
		"RetryJoinMaxAttemptsLAN": 0,
		"LeaveOnTerm":             c.LeaveOnTerminate,
		"DisableKeyringFile":      c.DisableKeyringFile,
		"EncryptKey":              "hidden",
		"Revision":                labRevision,
		"Version":                 version,
	}
	if a.apiShape == "1.11" {
		debug["EncryptVerifyIncoming"] = c.EncryptVerifyIncoming
		debug["EncryptVerifyOutgoing"] = c.EncryptVerifyOutgoing
	} else {
		debug["StaticRuntimeConfig"] = map[string]interface{}{
			"EncryptVerifyIncoming": c.EncryptVerifyIncoming,
			"EncryptVerifyOutgoing": c.EncryptVerifyOutgoing,
		}
	}
	consulStats := map[string]string{"acl": "disabled"}
	leaderName, leaderAddr := a.leader()
	if c.Server {
		consulStats["server"] = "true"
		consulStats["leader"] = strconv.FormatBool(leaderName == c.NodeName)
		consulStats["leader_addr"] = leaderAddr
		consulStats["bootstrap"] = "false"
		consulStats["known_datacenters"] = "1"
	} else {
		consulStats["server"] = "false"
		consulStats["known_servers"] = strconv.Itoa(len(a.aliveServers()))
	}
	stats := map[string]map[string]string{
		"agent":    {"check_monitors": "0", "check_ttls": "0", "checks": "0", "services": "0"},
		"build":    {"revision": labRevision, "version": strings.TrimSuffix(version, "-lab"), "prerelease": "lab"},
		"consul":   consulStats,
		"serf_lan": a.serf.Stats(),
		"runtime": {
			"arch": runtime.GOARCH, "os": runtime.GOOS, "version": runtime.Version(),
			"goroutines": strconv.Itoa(runtime.NumGoroutine()), "max_procs": strconv.Itoa(runtime.GOMAXPROCS(0)),
			"cpu_count": strconv.Itoa(runtime.NumCPU()),
		},
	}
	return map[string]interface{}{
		"Config":      config,
		"DebugConfig": debug,
		"Coord":       nil,
		"Member":      a.serf.LocalMember(),
		"Stats":       stats,
		"Meta":        map[string]string{"consul-network-segment": ""},
	}, nil
}

// KeyringResponse is Consul's structs.KeyringResponse.
type KeyringResponse struct {
	WAN         bool
	Datacenter  string
	Segment     string
	Partition   string            `json:",omitempty"`
	Messages    map[string]string `json:",omitempty"`
	Keys        map[string]int
	PrimaryKeys map[string]int
	NumNodes    int
	Error       string `json:",omitempty"`
}

type keyringArgs struct {
	Key         string
	Token       string
	RelayFactor uint8
	LocalOnly   bool
}

func keyringErrorsOrNil(responses []*KeyringResponse) error {
	var errs error
	for _, response := range responses {
		if response.Error == "" {
			continue
		}
		pool := response.Datacenter + " (LAN)"
		if response.WAN {
			pool = "WAN"
		}
		if response.Segment != "" {
			pool += " [segment: " + response.Segment + "]"
		}
		errs = multierror.Append(errs, fmt.Errorf("%s error: %s", pool, response.Error))
		nodes := make([]string, 0, len(response.Messages))
		for n := range response.Messages {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			errs = multierror.Append(errs, fmt.Errorf("%s: %s", n, response.Messages[n]))
		}
	}
	return errs
}

func (a *Agent) operatorKeyring(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args keyringArgs
	if r.Method == "POST" || r.Method == "PUT" || r.Method == "DELETE" {
		if err := json.NewDecoder(r.Body).Decode(&args); err != nil {
			return nil, httpError{http.StatusBadRequest, fmt.Sprintf("Request decode failed: %v", err)}
		}
	}
	q := r.URL.Query()
	if rf := q.Get("relay-factor"); rf != "" {
		n, err := strconv.Atoi(rf)
		if err != nil {
			return nil, httpError{http.StatusBadRequest, fmt.Sprintf("Error parsing relay factor: %v", err)}
		}
		if n < 0 || n > 5 {
			return nil, httpError{http.StatusBadRequest, "Invalid relay-factor: Relay factor must be in range: [0, 5]"}
		}
		args.RelayFactor = uint8(n)
	}
	if lo := q.Get("local-only"); lo != "" {
		v, err := strconv.ParseBool(lo)
		if err != nil {
			return nil, httpError{http.StatusBadRequest, fmt.Sprintf("Error parsing local-only: %v", err)}
		}
		args.LocalOnly = v
		if v && r.Method != "GET" {
			return nil, httpError{http.StatusBadRequest, "Invalid use of local-only: local-only can only be set for list requests"}
		}
	}

	if r.Method == "GET" && args.LocalOnly {
		return []*KeyringResponse{a.localKeyring()}, nil
	}

	km := a.serf.KeyManager()
	opts := &serf.KeyRequestOptions{RelayFactor: args.RelayFactor}
	var resp *serf.KeyResponse
	var err error
	switch r.Method {
	case "GET":
		resp, err = km.ListKeysWithOptions(opts)
	case "POST":
		resp, err = km.InstallKeyWithOptions(args.Key, opts)
	case "PUT":
		resp, err = km.UseKeyWithOptions(args.Key, opts)
	case "DELETE":
		resp, err = km.RemoveKeyWithOptions(args.Key, opts)
	}
	kr := &KeyringResponse{
		Datacenter:  a.cfg.Datacenter,
		Keys:        map[string]int{},
		PrimaryKeys: map[string]int{},
	}
	if resp != nil {
		kr.Messages = resp.Messages
		kr.Keys = resp.Keys
		kr.NumNodes = resp.NumNodes
		if r.Method == "GET" {
			kr.PrimaryKeys = resp.PrimaryKeys
		}
	}
	if err != nil {
		kr.Error = err.Error()
	}
	responses := []*KeyringResponse{kr}
	if e := keyringErrorsOrNil(responses); e != nil {
		return nil, e
	}
	if r.Method == "GET" {
		return responses, nil
	}
	return nil, nil
}

// localKeyring answers local-only list requests from this agent's keyring.
func (a *Agent) localKeyring() *KeyringResponse {
	kr := &KeyringResponse{
		Datacenter:  a.cfg.Datacenter,
		Keys:        map[string]int{},
		PrimaryKeys: map[string]int{},
		NumNodes:    1,
	}
	if ring := a.keyring(); ring != nil {
		for _, k := range ring.GetKeys() {
			kr.Keys[base64.StdEncoding.EncodeToString(k)] = 1
		}
		if p := ring.GetPrimaryKey(); p != nil {
			kr.PrimaryKeys[base64.StdEncoding.EncodeToString(p)] = 1
		}
	}
	return kr
}
