// The browser side of the bridge tests: a stock WebTorrent client whose only tracker is the bridge.
// Query: mode=download&magnet=...  or  mode=seed&name=... ; tracker=<bridge announce URL>.
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

function watch (torrent) {
  torrent.on('warning', w => log('warning:', String(w.message || w)))
  torrent.on('wire', wire => log('wire:', wire.remoteAddress || 'webrtc', wire.peerId))
}

async function download () {
  const started = performance.now()
  client.add(q.get('magnet'), { announce: [tracker] }, torrent => {
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
}

async function seed () {
  const data = await (await fetch('/file')).arrayBuffer()
  const file = new File([data], q.get('name'))
  client.seed(file, { announce: [tracker], pieceLength: 65536 }, torrent => {
    watch(torrent)
    torrent.on('upload', () => {})
    post('/result/magnet', torrent.magnetURI)
  })
}

log('webrtc', String(WebTorrent.WEBRTC_SUPPORT))
if (q.get('mode') === 'download') download()
else if (q.get('mode') === 'seed') seed()
else log('unknown mode')
