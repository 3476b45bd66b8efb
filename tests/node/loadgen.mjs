// WebSocket tracker load generator (used by bench/tracker.py): N peers, each on its own socket,
// announce with offers; every relayed offer is answered. Prints one JSON line with the results.
// Usage: node loadgen.mjs <url[,url...]> <peers> <hashes> <mode: closed|rate> <rate/s> <seconds> [offers]
//   closed: every peer re-announces as soon as its reply arrives (measures the saturated rate)
//   rate:   announces are sent at a fixed total rate, round robin over peers (measures latency)
// Several URLs (tracker instances sharing swarms): each swarm's peers are spread over them, so peer i
// (of swarm i mod hashes) connects to URL floor(i / hashes) mod their number.
import WebSocket from 'ws'
import { randomBytes } from 'node:crypto'

const [urlsArg, peersArg, hashesArg, mode, rateArg, secondsArg, offersArg] = process.argv.slice(2)
const PEERS = Number(peersArg)
const HASHES = Number(hashesArg)
const RATE = Number(rateArg)
const SECONDS = Number(secondsArg)
const OFFERS = Number(offersArg || 5)
const CONNECT_BATCH = 250
const URLS = urlsArg.split(',')

const id = () => randomBytes(10).toString('hex') // 20 ASCII chars
const infoHashes = Array.from({ length: HASHES }, id)
const sdp = kind => `v=0\r\no=- ${Date.now()} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n` +
  'a=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n' +
  `a=ice-ufrag:${id().slice(0, 4)}\r\na=ice-pwd:${id()}${id().slice(0, 4)}\r\na=ice-options:trickle\r\n` +
  'a=fingerprint:sha-256 ' + Array.from(randomBytes(32), b => b.toString(16).padStart(2, '0').toUpperCase()).join(':') +
  `\r\na=setup:${kind === 'offer' ? 'actpass' : 'active'}\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n`
const OFFER_SDP = sdp('offer')
const ANSWER_SDP = sdp('answer')

let measuring = false
const latencies = []
const stats = { sent: 0, replies: 0, offersReceived: 0, answersReceived: 0, failures: 0, closed: 0 }

function makePeer (i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URLS[Math.floor(i / HASHES) % URLS.length], { perMessageDeflate: false })
    const peer = { ws, peerId: id(), infoHash: infoHashes[i % HASHES], pending: [], started: false }
    ws.on('open', () => resolve(peer))
    ws.on('error', err => { if (!peer.opened) reject(err) })
    ws.on('close', () => { stats.closed += 1 })
    ws.on('message', data => onMessage(peer, data))
  })
}

function announce (peer, event) {
  const msg = { action: 'announce', info_hash: peer.infoHash, peer_id: peer.peerId, numwant: OFFERS,
    uploaded: 0, downloaded: 0, left: 1000 }
  if (event) msg.event = event
  msg.offers = Array.from({ length: OFFERS }, () => ({ offer: { type: 'offer', sdp: OFFER_SDP }, offer_id: id() }))
  peer.pending.push(performance.now())
  if (measuring) stats.sent += 1
  peer.ws.send(JSON.stringify(msg))
}

function onMessage (peer, data) {
  const msg = JSON.parse(data)
  if (msg['failure reason']) { stats.failures += 1; peer.pending.shift(); return }
  if (msg.offer) {
    if (measuring) stats.offersReceived += 1
    peer.ws.send(JSON.stringify({ action: 'announce', info_hash: msg.info_hash, peer_id: peer.peerId,
      to_peer_id: msg.peer_id, offer_id: msg.offer_id, answer: { type: 'answer', sdp: ANSWER_SDP } }))
    return
  }
  if (msg.answer) { if (measuring) stats.answersReceived += 1; return }
  if (msg.complete !== undefined) {
    const t0 = peer.pending.shift()
    if (measuring && t0 !== undefined) {
      stats.replies += 1
      latencies.push(performance.now() - t0)
    }
    if (peer.onReply) peer.onReply()
  }
}

const peers = []
for (let i = 0; i < PEERS; i += CONNECT_BATCH) {
  const batch = []
  for (let j = i; j < Math.min(PEERS, i + CONNECT_BATCH); j++) batch.push(makePeer(j))
  peers.push(...await Promise.all(batch))
}
// Everyone joins its swarm first (not measured), in batches so the join is not itself a storm.
for (let i = 0; i < PEERS; i += CONNECT_BATCH) {
  await Promise.all(peers.slice(i, i + CONNECT_BATCH).map(p => new Promise(resolve => {
    p.onReply = () => { p.onReply = null; resolve() }
    announce(p, 'started')
  })))
}

process.stdout.write(JSON.stringify({ measuring: true }) + '\n')
const cpu0 = process.cpuUsage()
const t0 = performance.now()
measuring = true
let timer = null
if (mode === 'closed') {
  for (const p of peers) {
    p.onReply = () => { if (measuring) announce(p) }
    announce(p)
  }
} else {
  let next = 0
  let due = 0
  const tick = 10
  timer = setInterval(() => {
    due += RATE * tick / 1000
    while (due >= 1) {
      due -= 1
      announce(peers[next])
      next = (next + 1) % peers.length
    }
  }, tick)
}
await new Promise(resolve => setTimeout(resolve, SECONDS * 1000))
measuring = false
if (timer) clearInterval(timer)
const elapsed = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
latencies.sort((a, b) => a - b)
const pct = q => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null
process.stdout.write(JSON.stringify({
  mode, peers: PEERS, seconds: elapsed, announcesPerSecond: stats.replies / elapsed,
  p50ms: pct(0.5), p99ms: pct(0.99), ...stats,
  loadgenCpuPercent: 100 * (cpu.user + cpu.system) / 1e6 / elapsed
}) + '\n')
for (const p of peers) p.ws.terminate()
process.exit(0)
