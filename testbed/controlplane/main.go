// Command controlplane is the Kubernetes control plane of devscale's test bed, one binary for
// all of it so that the compile of k8s.io/kubernetes is shared. It is test infrastructure,
// never shipped. The first argument names the component:
//
//	controlplane apiserver -data-dir DIR -etcd-port N -etcd-peer-port N -- <kube-apiserver flags>
//	controlplane controller-manager <kube-controller-manager flags>
//	controlplane scheduler <kube-scheduler flags>
//
// apiserver runs etcd embedded in the same process, on loopback; the service-account signing
// key is generated into DIR/sa.key when it does not exist yet.
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

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch component, args := os.Args[1], os.Args[2:]; component {
	case "apiserver":
		runAPIServer(args)
	case "controller-manager":
		run(component, controllermanager.NewControllerManagerCommand(), args)
	case "scheduler":
		run(component, scheduler.NewSchedulerCommand(), args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: controlplane apiserver|controller-manager|scheduler [flags]")
	os.Exit(2)
}

// run executes a component's own command line, as its standalone binary would.
func run(component string, cmd *cobra.Command, args []string) {
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %s: %v\n", component, err)
		os.Exit(1)
	}
}

func runAPIServer(argv []string) {
	flag.CommandLine.Init("apiserver", flag.ExitOnError)
	dataDir := flag.String("data-dir", "", "directory for etcd data and the service-account key")
	etcdPort := flag.Int("etcd-port", 0, "etcd client port on 127.0.0.1")
	etcdPeerPort := flag.Int("etcd-peer-port", 0, "etcd peer port on 127.0.0.1")
	_ = flag.CommandLine.Parse(argv)
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

	run("kube-apiserver", apiserver.NewAPIServerCommand(), flag.Args())
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
