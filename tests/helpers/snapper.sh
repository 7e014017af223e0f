# tests/helpers/snapper.sh - sourced by the snapper tests, after functions.sh.
#
# mksnapper NAME SUBVOL  make snapper config NAME for SUBVOL (no timeline
#                        snapshots, number cleanup without minimum age);
#                        prints NAME.  At exit the config is deleted and
#                        /etc/default/snapper restored as it was.
# sn ARGS...             snapper --no-dbus -c "$SNCFG" ARGS...
# snaps                  one line per snapshot of $SNCFG but 0:
#                        "NUMBER TYPE PRE-NUMBER CLEANUP USERDATA", "-" for
#                        none, userdata as key=value,... sorted by key
# snap_field NUM KEY     one field of snapper's JSON listing of snapshot NUM

mksnapper() {
	local name=$1 subvol=$2 saved
	saved=$(mktemp "$TMP/snapper-default.XXXXXX")
	if [ -f /etc/default/snapper ]; then
		cp -p /etc/default/snapper "$saved"
		cleanup_fn "cat '$saved' > /etc/default/snapper"
	else
		cleanup_fn "rm -f /etc/default/snapper"
	fi
	cleanup_fn "snapper --no-dbus -c '$name' delete-config >/dev/null 2>&1; rm -f '/etc/snapper/configs/$name'"
	[ ! -e "/etc/snapper/configs/$name" ] || fail "snapper config $name exists already"
	snapper --no-dbus -c "$name" create-config "$subvol" >&2 || fail "snapper create-config $subvol"
	snapper --no-dbus -c "$name" set-config TIMELINE_CREATE=no NUMBER_MIN_AGE=0 \
		EMPTY_PRE_POST_CLEANUP=no || fail "snapper set-config"
	echo "$name"
}

sn() {
	snapper --no-dbus -c "$SNCFG" "$@"
}

snaps() {
	sn --jsonout list --disable-used-space | jq -r --arg c "$SNCFG" '
		.[$c][] | select(.number > 0) |
		((.userdata // {}) | to_entries | map("\(.key)=\(.value)") | join(",")) as $u |
		"\(.number) \(.type) \(.["pre-number"] // "-") \(if .cleanup == "" then "-" else .cleanup end) \(if $u == "" then "-" else $u end)"'
}

snap_field() {
	sn --jsonout list --disable-used-space |
		jq -r --arg c "$SNCFG" --argjson n "$1" --arg k "$2" '.[$c][] | select(.number == $n) | .[$k]'
}
