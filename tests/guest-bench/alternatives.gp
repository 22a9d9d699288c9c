# Time and host RAM of each workload on each alternative, as clustered
# bars.  Called by plots.py with datadir, outdir, nalt (the number of
# configurations: columns 2..nalt+1) and ref (the reference's title).
set terminal pngcairo size 1200,520 font "sans,10"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key autotitle columnheader outside right top
set grid ytics
set yrange [0:*]

set output outdir.'/alternatives-time.png'
set title "Wall time of each workload, as a ratio to ".ref." (lower is faster; guests under TCG)"
set ylabel "time / reference"
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5
plot for [i=2:nalt+1] datadir.'/alt-time.dat' using i:xtic(1)

unset arrow 1
set output outdir.'/alternatives-ram.png'
set terminal pngcairo size 1200,860 font "sans,10"
set multiplot layout 2,1 title "Host RAM per workload (medians)"
set title "host RAM: QEMU's peak RSS + the host page cache holding the guest's disk images"
set ylabel "MiB"
plot for [i=2:nalt+1] datadir.'/alt-ram.dat' using i:xtic(1)
set title "of it, beyond the guest's RAM: tmem's store (inside QEMU's RSS) + the images in host page cache"
plot for [i=2:nalt+1] datadir.'/alt-extra.dat' using i:xtic(1)
unset multiplot
