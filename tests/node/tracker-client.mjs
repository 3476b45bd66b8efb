// Drives the reference bittorrent-tracker client against a tracker and prints what it observes, one
// JSON object per line. Usage: node tracker-client.mjs <announce-url> <info-hash-hex> [scenario]
// Scenarios: "swarm" (a seeder and a leecher: start, scrape, complete, scrape, stop) and "denied".
// No WebRTC runs: numwant is 0 (no offers) and there are no ICE servers, so nothing leaves loopback.
import Client from 'bittorrent-tracker'

const [url, infoHash, scenario = 'swarm'] = process.argv.slice(2)
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
setTimeout(() => { out({ event: 'timeout' }); process.exit(2) }, 60000).unref()

function makeClient (name, left) {
  const client = new Client({
    infoHash,
    peerId: Buffer.from(name.repeat(20).slice(0, 20)),
    announce: [url],
    port: 6881,
    rtcConfig: { iceServers: [] },
    getAnnounceOpts: () => ({ numwant: 0, left: client.left })
  })
  client.left = left
  for (const ev of ['update', 'scrape']) {
    client.on(ev, data => out({ client: name, event: ev, complete: data.complete, incomplete: data.incomplete,
      downloaded: data.downloaded, infoHash: data.infoHash, interval: data.interval }))
  }
  client.on('warning', err => out({ client: name, event: 'warning', message: err.message }))
  client.on('error', err => out({ client: name, event: 'error', message: err.message }))
  return client
}

function next (client, ev) {
  return new Promise(resolve => client.once(ev, resolve))
}

const seeder = makeClient('s', 0)
if (scenario === 'denied') {
  const warned = next(seeder, 'warning')
  seeder.start()
  await warned
  seeder.scrape()
  await next(seeder, 'warning')
  seeder.destroy()
  out({ event: 'done' })
  process.exit(0)
}
let got = next(seeder, 'update')
seeder.start()
await got
const leecher = makeClient('l', 1000)
got = next(leecher, 'update')
leecher.start()
await got
got = next(seeder, 'scrape')
seeder.scrape()
await got
leecher.left = 0
got = next(leecher, 'update')
leecher.complete()
await got
got = next(leecher, 'scrape')
leecher.scrape()
await got
got = next(seeder, 'update')
seeder.stop()
await got.catch(() => {})
got = next(leecher, 'scrape')
leecher.scrape()
await got
await new Promise(resolve => leecher.destroy(resolve))
await new Promise(resolve => seeder.destroy(resolve))
out({ event: 'done' })
process.exit(0)
