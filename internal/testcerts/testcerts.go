// Package testcerts makes a throwaway certificate authority with server and
// client certificates, for TLS tests and the CI's interop step. Keys are
// ECDSA P-256 (fast to generate), written as PEM (PKCS #8 for keys) so that
// Go, OpenSSL and Python's ssl module all read them.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that issues certificates into a directory.
type CA struct {
	// Dir holds ca.pem and what Issue writes.
	Dir string
	// CertFile is the CA certificate (the bundle clients and servers verify against).
	CertFile string
	// Pool holds the CA certificate.
	Pool *x509.CertPool

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a CA named name and writes its certificate to dir/ca.pem.
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Warren tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Dir: dir, CertFile: filepath.Join(dir, "ca.pem"), Pool: x509.NewCertPool(), cert: cert, key: key}
	ca.Pool.AddCert(cert)
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issued is a certificate the CA issued, with its files.
type Issued struct {
	CertFile, KeyFile string
	// Cert is the certificate and key, ready for a tls.Config.
	Cert tls.Certificate
}

// Server issues a server certificate for localhost and 127.0.0.1 named cn,
// written to dir/NAME.pem and dir/NAME-key.pem.
func (ca *CA) Server(name, cn string) (*Issued, error) {
	return ca.Issue(name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Client issues a client certificate with common name cn and the given DNS
// subject alternative names, written to dir/NAME.pem and dir/NAME-key.pem.
func (ca *CA) Client(name, cn string, dnsSANs ...string) (*Issued, error) {
	return ca.Issue(name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"Warren tests"}},
		DNSNames:    dnsSANs,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Issue signs tmpl (its serial number, validity and key usage filled in) for
// a new key and writes dir/NAME.pem and dir/NAME-key.pem.
func (ca *CA) Issue(name string, tmpl *x509.Certificate) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	is := &Issued{
		CertFile: filepath.Join(ca.Dir, name+".pem"),
		KeyFile:  filepath.Join(ca.Dir, name+"-key.pem"),
		Cert:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
	if is.Cert.Leaf, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	if err := writePEM(is.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writePEM(is.KeyFile, "PRIVATE KEY", keyDER); err != nil {
		return nil, err
	}
	return is, nil
}

// writePEM writes one PEM block through a temporary file and a rename, so a
// reader (a broker reloading on SIGHUP) never sees half a file.
func writePEM(path, typ string, der []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("testcerts: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
