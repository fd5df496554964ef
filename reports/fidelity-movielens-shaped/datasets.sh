# The shaped ratings files of the fidelity matrix (movielens_shaped.py, deterministic) and the
# `ifru fidelity` options that read them. Sourced from the repository root by the run scripts:
# defines AM (Amazon-shaped), ML100K / ML1M (the MovieLens-shaped files) with ML (their options);
# each file is generated under runs/ the first time a script needs it.
SHAPED=reports/fidelity-movielens-shaped/movielens_shaped.py
AMZ=runs/amazon-shaped/ratings.csv
ML100K=runs/plateaus/100k.dat
ML1M=runs/plateaus/1m.dat
AM=(--dataset "$AMZ" --header --columns user,item,rating,timestamp --threshold 3 --kcore 5)
ML=(--sep :: --columns user,item,rating,timestamp --threshold 3 --kcore 5)
shaped_files() {  # generate the files that are missing
  [ -f "$AMZ" ] || { mkdir -p "$(dirname "$AMZ")" && .venv/bin/python "$SHAPED" 20000 8000 200000 3 "$AMZ" amazon; }
  [ -f "$ML100K" ] || { mkdir -p "$(dirname "$ML100K")" && .venv/bin/python "$SHAPED" 943 1682 100000 7 "$ML100K"; }
  [ -f "$ML1M" ] || { mkdir -p "$(dirname "$ML1M")" && .venv/bin/python "$SHAPED" 6040 3706 1000209 7 "$ML1M"; }
}
