cd $RWDIR
for i in $(seq 1 10); do ip link add d$i type dummy; done
trace-cmd record -p function_graph -g rtnetlink_rcv -o $RWDIR/v7.dat ip link show > /dev/null 2> $RWDIR/v7.err
trace-cmd record --file-version 6 -p function_graph -g rtnetlink_rcv -e skb:kfree_skb -o $RWDIR/v6.dat ip -d link show > /dev/null 2> $RWDIR/v6.err
trace-cmd record --compression any -p function_graph -g rtnetlink_rcv -o $RWDIR/v7c.dat ip link show > /dev/null 2> $RWDIR/v7c.err
trace-cmd record --compression zlib -p function_graph -g rtnetlink_rcv -o $RWDIR/v7z.dat ip link show > /dev/null 2> $RWDIR/v7z.err
for f in v7 v6 v7c v7z; do trace-cmd report -i $RWDIR/$f.dat > $RWDIR/$f.txt 2>/dev/null; done
trace-cmd list -c > $RWDIR/compressions.txt 2>&1
ls -la $RWDIR
