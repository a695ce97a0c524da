#!/bin/sh
# The hook script given to dhclient (-sf) and udhcpc (-s) in tests. It configures the address on
# the test's interface and records what the client was given in $CLIENT_RESULT. It never touches
# /etc/resolv.conf or routes: the stock scripts would rewrite the host's resolver from a namespace.
out="${CLIENT_RESULT:-/dev/null}"
if [ -n "$reason" ]; then
  # dhclient: $reason, $new_ip_address, $new_subnet_mask, $new_host_name, $interface
  case "$reason" in
    BOUND|RENEW|REBIND|REBOOT)
      [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ] && ip addr del "$old_ip_address/$new_subnet_mask" dev "$interface" 2>/dev/null
      ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
      echo "$reason ip=$new_ip_address hostname=$new_host_name lease=$new_dhcp_lease_time" >> "$out" ;;
    RELEASE|EXPIRE|STOP)
      [ -n "$old_ip_address" ] && ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
      echo "$reason ip=$old_ip_address" >> "$out" ;;
  esac
else
  # udhcpc: $1 is the event, $ip, $subnet, $hostname, $boot_file, $siaddr, $interface
  case "$1" in
    bound|renew)
      ip addr replace "$ip/$subnet" dev "$interface"
      echo "$1 ip=$ip hostname=$hostname lease=$lease boot_file=$boot_file siaddr=$siaddr" >> "$out" ;;
    deconfig)
      ip addr flush dev "$interface" scope global 2>/dev/null
      echo "deconfig" >> "$out" ;;
  esac
fi
exit 0
