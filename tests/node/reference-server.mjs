// The reference WebTorrent tracker (bittorrent-tracker's server) on loopback, for tests and benchmarks.
// Usage: node reference-server.mjs [port]; prints {"port": N} once listening, runs until killed.
import Server from 'bittorrent-tracker/server'

const server = new Server({ udp: false, http: true, ws: true, stats: true, trustProxy: false })
server.on('error', err => { console.error(err.message) })
server.on('warning', () => {})
server.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: server.http.address().port }) + '\n')
})
server.listen(Number(process.argv[2] || 0), '127.0.0.1')
