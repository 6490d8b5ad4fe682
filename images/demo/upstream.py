"""The demo stack's upstream: an HTTPS echo that reports the headers it received."""
import http.server, json, ssl

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}, indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), Echo)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/demo/upstream.pem", "/demo/upstream-key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
