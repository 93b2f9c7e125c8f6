package main

import "github.com/hashicorp/memberlist"

var keyringRef *memberlist.Keyring

// keyring returns the memberlist keyring the agent started with (serf mutates
// it in place on install/use/remove), or nil when encryption is off.
func (a *Agent) keyring() *memberlist.Keyring { return keyringRef }
