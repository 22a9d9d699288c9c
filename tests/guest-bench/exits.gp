# Kicks and interrupts per page against the batch size, one line per op
# in the workload that exercises it.  Called by plots.py with datadir,
# outdir and nops (the number of lines) set; the data files have a
# header line and NaN where an op had no pages (or cost nothing, which a
# log axis cannot show).
set terminal pngcairo size 1200,520 font "sans,10"
set output outdir.'/exits-per-page.png'
set datafile missing "NaN"
set key autotitle columnheader
set logscale x 2
set logscale y 10
set xrange [0.7:181]
set xtics (1, 8, 32, 64, 128)
set format y "%g"
set grid xtics ytics mytics
set key bottom left box opaque font ",8"
set xlabel "pages per request (batch size; 1 = sync)"
set multiplot layout 1,2 title "virtio-tmem: notifications per page as the batch grows (guest driver counters)"
set title "guest->host notifications (kicks) per page"
set ylabel "kicks per page"
plot for [i=2:nops+1] datadir.'/exits-kicks.dat' using 1:i with linespoints lw 2 pt (i+3)
set title "host->guest interrupts per page"
set ylabel "interrupts per page"
plot for [i=2:nops+1] datadir.'/exits-interrupts.dat' using 1:i with linespoints lw 2 pt (i+3)
unset multiplot
