// Runs inside the lab's network namespace: accepts TCP on HOST:PORT and pipes every
// connection to a unix socket where the test process serves HTTP (unix sockets are
// not namespaced), so the test machine reaches the config center without any route
// out of the namespace. Usage: node machine-lab-forward.js HOST PORT SOCKET
import net from 'node:net';

const [host, port, socket] = process.argv.slice(2);
const server = net.createServer((c) => {
  const u = net.connect(socket);
  c.pipe(u);
  u.pipe(c);
  // pipe() propagates a graceful end (flushing what is buffered); only errors tear
  // both sides down at once.
  const abort = () => { c.destroy(); u.destroy(); };
  c.on('error', abort);
  u.on('error', abort);
});
server.listen(Number(port), host, () => process.stdout.write(`listening ${host}:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
