// The bittorrent-tracker client imports 'webrtc-polyfill', whose real package needs node-datachannel
// (a download at install time). @roamhq/wrtc ships its binary inside the npm package, so we use it.
import wrtc from '@roamhq/wrtc'
export const RTCPeerConnection = wrtc.RTCPeerConnection
export const RTCSessionDescription = wrtc.RTCSessionDescription
export const RTCIceCandidate = wrtc.RTCIceCandidate
export const RTCDataChannel = wrtc.RTCDataChannel
export default wrtc
