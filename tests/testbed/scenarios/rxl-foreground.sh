# rxl-foreground: `rxl create -F` (xl's -F) stays in the foreground as the domain's
# monitor. The guest reboots at once; on_reboot="restart" makes the foreground
# monitor recreate it from the config file as edited meanwhile (it then names the
# default guest script, which powers off), and the command returns once the
# restarted guest powered off and was destroyed.
# timeout: 300

start_debian_xenstored
start_xenconsoled

name=rxlfg
cfg=$(guest_cfg "$name" rxl-reboot vcpus=1 memory=128 'on_reboot="restart"')
out=/tmp/$name.out
rxl -v create -F "$cfg" > "$out" 2>&1 &
pid=$!
wait_for 60 "domain $name to exist" domain_exists "$name"
id1=$(xl domid "$name")
sed -i 's/rxen.guest=rxl-reboot/rxen.guest=default/' "$cfg"
check "rxl create -F is still running while the domain exists" kill -0 "$pid"
wait_for 240 "rxl create -F to return" sh -c "! kill -0 $pid 2>/dev/null"
wait "$pid"
rc=$?
show_file rxl-create-F "$out"
expect_eq "rxl create -F exit status" "$rc" 0
check "domain $name (first id $id1) is gone" sh -c "! xl domid $name >/dev/null 2>&1"
check "rxl create -F said it waits for the domain" grep -q "Waiting for domain $name" "$out"
check "the foreground monitor restarted the domain" grep -q "restarted" "$out"
log=$(guest_console_log "$name")
check "the restarted guest ran the edited config's script" grep -q 'RXEN-GUEST-HELLO' "$log"
check "no xenstore node of domain $id1 left" sh -c "! xenstore-exists /local/domain/$id1"
