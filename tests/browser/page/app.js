// The browser side of the bridge tests: a stock WebTorrent client whose only tracker is the bridge.
// Query: mode=download&magnet=...  or  mode=seed&name=...  or  mode=tempt (both) ; tracker=<bridge URL>.
// Results go back to the harness by POST: /result/<kind> (bytes or text), /log (text).
import WebTorrent from '/webtorrent.min.js'

const q = new URLSearchParams(location.search)
const tracker = q.get('tracker')
const state = document.getElementById('state')
const post = (path, body) => fetch(path, { method: 'POST', body })
const log = (...parts) => { state.textContent = parts.join(' '); return post('/log', parts.join(' ')) }
window.addEventListener('error', e => log('page error:', e.message))
window.addEventListener('unhandledrejection', e => log('unhandled rejection:', String(e.reason)))

// No STUN/TURN: the page's ICE uses only its own interfaces, like the bridge's.
const client = new WebTorrent({ tracker: { rtcConfig: { iceServers: [] } }, dht: false, lsd: false, webSeeds: false })
client.on('error', e => post('/result/error', String(e.message || e)))

// A tracker that turns us away shows as a warning on the torrent: /result/refused-<kind> reports the first.
function reportRefusal (torrent, kind) {
  const onWarning = w => {
    const text = String(w.message || w)
    if (!/error connecting to/i.test(text)) return
    torrent.removeListener('warning', onWarning)
    post('/result/refused-' + kind, text)
  }
  torrent.on('warning', onWarning)
}

function watch (torrent) {
  torrent.on('warning', w => log('warning:', String(w.message || w)))
  torrent.on('wire', wire => log('wire:', wire.remoteAddress || 'webrtc', wire.peerId))
}

async function download () {
  const started = performance.now()
  const added = client.add(q.get('magnet'), { announce: [tracker] }, torrent => {
    watch(torrent)
    log('metadata:', torrent.name, torrent.length)
    const progress = setInterval(() => log('progress:', torrent.progress.toFixed(3), torrent.numPeers, torrent.downloadSpeed), 2000)
    torrent.on('done', () => clearInterval(progress))
    torrent.on('done', async () => {
      await post('/result/seconds', String((performance.now() - started) / 1000))
      try {
        const file = torrent.files[0]
        const data = typeof file.arrayBuffer === 'function' ? await file.arrayBuffer() : await (await file.blob()).arrayBuffer()
        await post('/result/download', data)
      } catch (e) {
        await post('/result/error', 'reading the downloaded file: ' + String(e.message || e))
      }
    })
  })
  reportRefusal(added, 'download')
}

async function seed () {
  const data = await (await fetch('/file')).arrayBuffer()
  const file = new File([data], q.get('name'))
  const seeded = client.seed(file, { announce: [tracker], pieceLength: 65536 }, torrent => {
    watch(torrent)
    torrent.on('upload', () => {})
    post('/result/magnet', torrent.magnetURI)
  })
  reportRefusal(seeded, 'seed')
}

// A misbehaving peer beside the real client: it offers a data channel through the bridge like any
// WebTorrent peer, then sends bytes that are not the BitTorrent wire. The bridge must drop it alone.
async function garbagePeer () {
  const hex = /btih:([0-9a-f]{40})/i.exec(q.get('magnet'))[1]
  const infoHash = hex.match(/../g).map(h => String.fromCharCode(parseInt(h, 16))).join('')
  const ws = new WebSocket(tracker)
  await new Promise(resolve => { ws.onopen = resolve })
  const pc = new RTCPeerConnection({ iceServers: [] })
  const dc = pc.createDataChannel('garbage')
  await pc.setLocalDescription(await pc.createOffer())
  await new Promise(resolve => {
    const check = () => pc.iceGatheringState === 'complete' && resolve()
    pc.onicegatheringstatechange = check
    check()
  })
  ws.onmessage = e => { const m = JSON.parse(e.data); if (m.answer) pc.setRemoteDescription(m.answer) }
  ws.send(JSON.stringify({
    action: 'announce', info_hash: infoHash, peer_id: '-GB0001-garbagepeer1', numwant: 1, uploaded: 0,
    downloaded: 0, left: 1, event: 'started',
    offers: [{ offer_id: 'garbageofferid000001', offer: { type: 'offer', sdp: pc.localDescription.sdp } }]
  }))
  dc.onopen = () => { dc.send(new Uint8Array(4096).fill(0x41)); post('/result/garbage-open', 'open') }
  dc.onclose = () => post('/result/garbage-closed', 'closed')
}

log('webrtc', String(WebTorrent.WEBRTC_SUPPORT))
if (q.get('garbage')) garbagePeer()
if (q.get('mode') === 'download') download()
else if (q.get('mode') === 'seed') seed()
else if (q.get('mode') === 'tempt') { seed(); download() }
else log('unknown mode')
