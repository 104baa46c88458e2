// Command controlplane runs etcd (embedded) and kube-apiserver in one process, on loopback,
// for devscale's integration tests. It is test infrastructure, never shipped.
//
// Usage: controlplane -data-dir DIR -etcd-port N -etcd-peer-port N -- <kube-apiserver flags>
// The service-account signing key is generated into DIR/sa.key when it does not exist yet.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd data and the service-account key")
	etcdPort := flag.Int("etcd-port", 0, "etcd client port on 127.0.0.1")
	etcdPeerPort := flag.Int("etcd-peer-port", 0, "etcd peer port on 127.0.0.1")
	flag.Parse()
	if *dataDir == "" || *etcdPort == 0 || *etcdPeerPort == 0 {
		fmt.Fprintln(os.Stderr, "controlplane: -data-dir, -etcd-port and -etcd-peer-port are required")
		os.Exit(2)
	}
	if err := ensureServiceAccountKey(filepath.Join(*dataDir, "sa.key")); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane: service-account key:", err)
		os.Exit(1)
	}
	etcd, err := startEtcd(filepath.Join(*dataDir, "etcd"), *etcdPort, *etcdPeerPort)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane: etcd:", err)
		os.Exit(1)
	}
	defer etcd.Close()

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(flag.Args())
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane: kube-apiserver:", err)
		os.Exit(1)
	}
}

func startEtcd(dir string, port, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}

func ensureServiceAccountKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}
