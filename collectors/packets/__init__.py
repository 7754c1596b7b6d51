"""Packet capture for monitord: read pcap/pcapng offline, slice the header fields the traffic
detectors need with `struct`, and run the detectors (`analyze_pcap`).

No scapy on the hot path: `pcapfile` reads classic pcap and pcapng itself and `decode` slices
Ethernet/802.1Q/ARP/IPv4/IPv6/TCP/UDP/ICMP plus the few application fields (DNS question, DHCP
message type and server identifier, FTP reply code) the detectors look at.
"""
