// Command tsegossip-lab-agent is a stand-in for a Consul agent, limited to LAN
// gossip: it runs HashiCorp serf + memberlist (the libraries Consul uses) with
// Consul's config keys, keyring handling and HTTP API shapes, so gossip
// encryption rollouts can be exercised on 127.0.0.1 without a Consul binary.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

const (
	labVersion  = "1.15.2-lab"
	labRevision = "lab"
	buildDate   = "2023-03-30T17:51:19Z"
)

type source struct {
	path string
	dir  bool
}

type sourceFlag struct {
	dir     bool
	sources *[]source
}

func (f sourceFlag) String() string { return "" }
func (f sourceFlag) Set(v string) error {
	*f.sources = append(*f.sources, source{path: v, dir: f.dir})
	return nil
}

// Agent holds the running state.
type Agent struct {
	cfg      *Config
	nodeID   string
	serf     *serf.Serf
	logger   *log.Logger
	apiShape string
	started  time.Time

	joinMu sync.Mutex
	joined bool
}

func (a *Agent) logf(format string, args ...interface{}) {
	a.logger.Printf(format, args...)
}

func loadOrCreateNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	if b, err := ioutil.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if id != "" {
			return id, nil
		}
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	id := fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16])
	if err := os.MkdirAll(dataDir, 0700); err != nil {
		return "", err
	}
	if err := ioutil.WriteFile(path, []byte(id), 0600); err != nil {
		return "", err
	}
	return id, nil
}

func (a *Agent) tags() map[string]string {
	c := a.cfg
	build := fmt.Sprintf("%s:%s", labVersion, labRevision)
	t := map[string]string{
		"dc":      c.Datacenter,
		"segment": "",
		"id":      a.nodeID,
		"vsn":     "2",
		"vsn_min": "2",
		"vsn_max": "3",
		"build":   build,
	}
	if c.Server {
		t["role"] = "consul"
		t["port"] = strconv.Itoa(c.ServerPort)
		t["acls"] = "0"
		t["raft_vsn"] = "3"
	} else {
		t["role"] = "node"
	}
	return t
}

// retryJoin keeps joining the retry_join addresses every second until one
// join succeeds, like Consul's retry_join with retry_max=0.
func (a *Agent) retryJoin() {
	if len(a.cfg.RetryJoin) == 0 {
		return
	}
	a.logf("[INFO]  agent: Retry join is supported for the following discovery methods: cluster=LAN discovery_methods=\"static\"")
	a.logf("[INFO]  agent: Joining cluster...: cluster=LAN")
	attempt := 0
	for {
		attempt++
		n, err := a.serf.Join(a.cfg.RetryJoin, true)
		if n > 0 {
			a.logf("[INFO]  agent: (LAN) joined: number_of_nodes=%d", n)
			a.logf("[INFO]  agent: Join cluster completed. Synced with initial agents: cluster=LAN num_agents=%d", n)
			a.joinMu.Lock()
			a.joined = true
			a.joinMu.Unlock()
			return
		}
		a.logf("[WARN]  agent: (LAN) couldn't join: number_of_nodes=0 error=\"%v\"", err)
		a.logf("[WARN]  agent: Join cluster failed, will retry: cluster=LAN retry_interval=1s error=\"%v\"", err)
		select {
		case <-a.serf.ShutdownCh():
			return
		case <-time.After(time.Second):
		}
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	var sources []source
	fs := flag.NewFlagSet("tsegossip-lab-agent", flag.ContinueOnError)
	fs.Var(sourceFlag{dir: true, sources: &sources}, "config-dir", "directory of *.json config files (repeatable)")
	fs.Var(sourceFlag{dir: false, sources: &sources}, "config-file", "a JSON config file (repeatable)")
	apiShape := fs.String("api-shape", "1.15", "HTTP API shape to serve: 1.15 (verify flags in DebugConfig.StaticRuntimeConfig) or 1.11 (at the top of DebugConfig)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 1
	}
	if *apiShape != "1.15" && *apiShape != "1.11" {
		fmt.Fprintf(os.Stderr, "==> -api-shape must be 1.15 or 1.11\n")
		return 1
	}
	logger := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)

	cfg, err := loadConfig(sources, logger.Printf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "==> %s\n", err)
		return 1
	}
	if err := validateEncryptKey(cfg.Encrypt); err != nil {
		fmt.Fprintf(os.Stderr, "==> %s\n", err)
		return 1
	}
	nodeID, err := loadOrCreateNodeID(cfg.DataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "==> failed to set up node ID: %s\n", err)
		return 1
	}
	a := &Agent{cfg: cfg, nodeID: nodeID, logger: logger, apiShape: *apiShape, started: time.Now()}

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.Logger = logger
	sc.Tags = a.tags()
	sc.RejoinAfterLeave = false
	ml := memberlist.DefaultLANConfig()
	ml.Name = cfg.NodeName
	ml.BindAddr = cfg.BindAddr
	ml.BindPort = cfg.SerfLANPort
	ml.AdvertiseAddr = ""
	ml.AdvertisePort = cfg.SerfLANPort
	ml.Logger = logger
	ml.GossipVerifyIncoming = cfg.EncryptVerifyIncoming
	ml.GossipVerifyOutgoing = cfg.EncryptVerifyOutgoing
	ml.DeadNodeReclaimTime = 30 * time.Second
	sc.MemberlistConfig = ml

	if err := setupKeyrings(sc, cfg, logger.Printf); err != nil {
		fmt.Fprintf(os.Stderr, "==> Error starting agent: Failed to configure keyring: %v\n", err)
		return 1
	}
	keyringRef = sc.MemberlistConfig.Keyring

	fmt.Fprintf(os.Stdout, "==> Starting Consul agent...\n")
	fmt.Fprintf(os.Stdout, "              Version: '%s'\n", labVersion)
	fmt.Fprintf(os.Stdout, "              Node ID: '%s'\n", nodeID)
	fmt.Fprintf(os.Stdout, "            Node name: '%s'\n", cfg.NodeName)
	fmt.Fprintf(os.Stdout, "           Datacenter: '%s' (Segment: '')\n", cfg.Datacenter)
	fmt.Fprintf(os.Stdout, "               Server: %v (Bootstrap: false)\n", cfg.Server)
	fmt.Fprintf(os.Stdout, "          Client Addr: [127.0.0.1] (HTTP: %d)\n", cfg.HTTPPort)
	fmt.Fprintf(os.Stdout, "         Cluster Addr: %s (LAN: %d)\n", cfg.BindAddr, cfg.SerfLANPort)
	fmt.Fprintf(os.Stdout, "    Gossip Encryption: %v\n", cfg.Encrypt != "")
	fmt.Fprintf(os.Stdout, "      Verify Incoming: %v, Verify Outgoing: %v (lab: encrypt_verify_*)\n", cfg.EncryptVerifyIncoming, cfg.EncryptVerifyOutgoing)
	fmt.Fprintf(os.Stdout, "\n==> Log data will now stream in as it occurs:\n\n")
	os.Stdout.Sync()

	// Listen on HTTP before starting serf so a port clash fails fast.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.HTTPPort))
	if err != nil {
		fmt.Fprintf(os.Stderr, "==> Error starting agent: Failed to start HTTP listener: %v\n", err)
		return 1
	}

	s, err := serf.Create(sc)
	if err != nil {
		ln.Close()
		fmt.Fprintf(os.Stderr, "==> Error starting agent: Failed to start LAN Serf: %v\n", err)
		return 1
	}
	a.serf = s

	srv := &http.Server{Handler: a.routes()}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			a.logf("[ERROR] agent.http: serve failed: %v", err)
		}
	}()
	a.logf("[INFO]  agent: Started HTTP server: address=127.0.0.1:%d network=tcp", cfg.HTTPPort)
	a.logf("[INFO]  agent: Gossip encryption: encrypted=%v verify_incoming=%v verify_outgoing=%v keyring_file=%q",
		s.EncryptionEnabled(), cfg.EncryptVerifyIncoming, cfg.EncryptVerifyOutgoing, sc.KeyringFile)
	go a.retryJoin()
	a.logf("[INFO]  agent: Consul agent running!")

	sigCh := make(chan os.Signal, 4)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		select {
		case sig := <-sigCh:
			if sig == syscall.SIGHUP {
				a.logf("[WARN]  agent: Caught signal: hangup; reload is not supported by the lab agent (gossip settings need a restart anyway)")
				continue
			}
			a.logf("[INFO]  agent: Caught signal: signal=%v", sig)
			return a.shutdown(srv, cfg.LeaveOnTerminate)
		case <-leaveRequested:
			return a.shutdown(srv, true)
		}
	}
}

var leaveRequested = make(chan struct{}, 1)

func (a *Agent) shutdown(srv *http.Server, leave bool) int {
	rc := 0
	if leave {
		a.logf("[INFO]  agent: Gracefully shutting down agent...")
		if err := a.serf.Leave(); err != nil {
			a.logf("[ERROR] agent: Error on leave: %v", err)
			rc = 1
		}
	}
	a.logf("[INFO]  agent: Requesting shutdown")
	a.serf.Shutdown()
	srv.Close()
	a.logf("[INFO]  agent: shutdown complete")
	a.logf("[INFO]  agent: Exit code: code=%d", rc)
	return rc
}
