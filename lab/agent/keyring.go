package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// SerfLANKeyring is Consul's path of the LAN keyring inside data_dir.
const SerfLANKeyring = "serf/local.keyring"

// validateEncryptKey mirrors Consul's config validation of `encrypt`.
func validateEncryptKey(key string) error {
	if key == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("encrypt has invalid key: %s", err)
	}
	if err := memberlist.ValidateKey(raw); err != nil {
		return fmt.Errorf("encrypt has invalid key: %s", err)
	}
	return nil
}

// initKeyring writes a keyring file holding a single key (Consul's initKeyring).
func initKeyring(path, key string) error {
	if _, err := base64.StdEncoding.DecodeString(key); err != nil {
		return fmt.Errorf("Invalid key: %s", err)
	}
	keys := []string{key}
	keyringBytes, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0700); err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0600)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = fh.Write(keyringBytes)
	return err
}

func loadKeyring(c *serf.Config, keys []string) error {
	keysDecoded := make([][]byte, len(keys))
	for i, key := range keys {
		keyBytes, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			return err
		}
		keysDecoded[i] = keyBytes
	}
	if len(keysDecoded) == 0 {
		return fmt.Errorf("no keys present in keyring: %s", c.KeyringFile)
	}
	keyring, err := memberlist.NewKeyring(keysDecoded, keysDecoded[0])
	if err != nil {
		return err
	}
	c.MemberlistConfig.Keyring = keyring
	return nil
}

func loadKeyringFile(c *serf.Config) error {
	if c.KeyringFile == "" {
		return nil
	}
	if _, err := os.Stat(c.KeyringFile); err != nil {
		return err
	}
	data, err := ioutil.ReadFile(c.KeyringFile)
	if err != nil {
		return err
	}
	keys := make([]string, 0)
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	return loadKeyring(c, keys)
}

func keyringIsMissingKey(keyring *memberlist.Keyring, key string) bool {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return true
	}
	for _, installed := range keyring.GetKeys() {
		if bytes.Equal(installed, k) {
			return false
		}
	}
	return true
}

// setupKeyrings follows Consul's agent.setupBaseKeyrings for the LAN pool.
func setupKeyrings(sc *serf.Config, cfg *Config, logf func(string, ...interface{})) error {
	if cfg.DisableKeyringFile {
		if cfg.Encrypt == "" {
			return nil
		}
		return loadKeyring(sc, []string{cfg.Encrypt})
	}
	fileLAN := filepath.Join(cfg.DataDir, SerfLANKeyring)
	existingLANKeyring := false
	if cfg.Encrypt != "" {
		if _, err := os.Stat(fileLAN); err != nil {
			if err := initKeyring(fileLAN, cfg.Encrypt); err != nil {
				return err
			}
		} else {
			existingLANKeyring = true
		}
	}
	if _, err := os.Stat(fileLAN); err == nil {
		sc.KeyringFile = fileLAN
	}
	if err := loadKeyringFile(sc); err != nil {
		return err
	}
	if cfg.Encrypt != "" && existingLANKeyring &&
		keyringIsMissingKey(sc.MemberlistConfig.Keyring, cfg.Encrypt) {
		logf("[WARN]  agent: keyring doesn't include key provided with -encrypt, using keyring: keyring=LAN")
	}
	return nil
}
