"""TLS helpers for the integration tests: a throw-away self-signed certificate made with the
openssl CLI, and client contexts that verify against it (or force an old protocol version)."""
import os
import ssl
import subprocess
import warnings


def make_cert(directory, cn="localhost"):
    """Write a self-signed EC certificate (valid for localhost, 127.0.0.1 and ::1) and its key
    into directory; returns (cert_path, key_path)."""
    cert = os.path.join(str(directory), "cert.pem")
    key = os.path.join(str(directory), "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=%s" % cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    return cert, key


def client_context(cafile, minimum=None, maximum=None):
    """A client context that verifies the server against cafile (hostname checked too)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.check_hostname = True
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def old_protocol_context(version):
    """A client context that offers only `version` (TLSv1 or TLSv1_1), with the security level
    lowered so that the local OpenSSL is willing to try. Returns None when this Python/OpenSSL
    cannot be configured to offer it at all."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        return ctx
    except (ValueError, ssl.SSLError, AttributeError):
        return None
