"""How bytes reach a .b32: the SAM client, carriers, WebRTC over a carrier, the router launcher."""
