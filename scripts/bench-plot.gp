# SPDX-License-Identifier: GPL-2.0
# One benchmark figure: a panel per kernel (or clock), a line per series with
# min..max error bars around the median.  Called by scripts/bench-report:
#
#   gnuplot -e "out='fig1.png'; ttl='...'; xl='...'; yl='...'; logx=1; logy=1;
#               panels='K1 K2'; series='epoll/pipe aio-read/aiopipe-direct ...';
#               data='fig1'; xfmt='%g'" scripts/bench-plot.gp
#
# Optional: yfmt (y tic format, default "%.0s%c"), psuf (appended to each
# panel's name in its title), ref1=1 (draw the line y = 1: ratio plots).
#
# Data: <data>-<panel>.dat, one index block per series (in the order of
# 'series'; an empty block where a series has no point), columns
# x median min max.  Colour follows the model, dash and point the backend.

if (!exists("yfmt")) { yfmt = "%.0s%c" }
if (!exists("psuf")) { psuf = "" }
if (!exists("ref1")) { ref1 = 0 }
set terminal pngcairo size 760*words(panels), 620 font "Sans,9" noenhanced
set output out
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key outside bottom center horizontal maxrows 5 font ",8" spacing 0.9
set xlabel xl
set ylabel yl
if (logx) { set logscale x 2 } else { unset logscale x }
if (logy) { set logscale y 10 } else { unset logscale y; set yrange [0:*] }
set format y yfmt
# A ratio plot: the line y = 1, a range fitted to the data but never
# without 1, and tics that a narrow range still shows.
if (ref1) {
	set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 lc rgb "#444444" dt 2 front
	if (logy) { set logscale y 2 }
	set ytics (0.03125, 0.0625, 0.125, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 8)
	set autoscale yfix
	set yrange [*<0.8:1.25<*]
}
if (!exists("xfmt")) { xfmt = "%g" }
set format x xfmt
set autoscale xfix
set bars small

models = "poll select epoll aio-poll aio-read aio-rw io_uring-read io_uring-poll threads aio-direct aio-retry aio-retry-nofilter aiopipe-rw pipe-rw pipe-splice epoll-et io_uring-mshot"
colors = "#7f7f7f #bcbd22 #1f77b4 #ff7f0e #d62728 #000000 #2ca02c #17becf #8c564b #d62728 #9467bd #e377c2 #ff7f0e #1f77b4 #2ca02c #393b79 #006d2c"
backends = "pipe pipe-nonblock aiopipe-retry aiopipe-direct aiopipe-retry-nofilter"

pos(list, w) = strstrt(" ".list." ", " ".w." ")
idx(list, w) = pos(list, w) == 0 ? 0 : words(substr(" ".list." ", 1, pos(list, w) + 1))
slash(s) = strstrt(s, "/")
model(s) = slash(s) ? s[1:slash(s) - 1] : s
backend(s) = slash(s) ? s[slash(s) + 1:] : ""
color(s) = idx(models, model(s)) ? word(colors, idx(models, model(s))) : "#000000"
bidx(s) = idx(backends, backend(s))
dash(s) = bidx(s) == 1 ? 1 : bidx(s) == 2 ? 3 : bidx(s) == 3 ? 2 : bidx(s) == 4 ? 1 : bidx(s) == 5 ? 4 : 1
ptype(s) = bidx(s) == 1 ? 7 : bidx(s) == 2 ? 6 : bidx(s) == 3 ? 4 : bidx(s) == 4 ? 5 : bidx(s) == 5 ? 12 : 9
lwidth(s) = bidx(s) == 4 ? 2.2 : 1.4

set multiplot layout 1, words(panels) title ttl font ",11"
do for [k = 1:words(panels)] {
	set title word(panels, k).psuf
	f = data."-".word(panels, k).".dat"
	plot for [i = 1:words(series)] f index (i - 1) using 1:2:3:4 \
		with yerrorlines lc rgb color(word(series, i)) dt dash(word(series, i)) \
		pt ptype(word(series, i)) ps 0.8 lw lwidth(word(series, i)) \
		title word(series, i)
}
unset multiplot
