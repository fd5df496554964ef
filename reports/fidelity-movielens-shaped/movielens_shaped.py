"""movielens_shaped.py USERS ITEMS RATINGS SEED OUT: ``ifru_ext.data.synthetic.movielens_shaped_ratings``
written as a MovieLens 1M-style file, ``user::item::rating::timestamp`` per line."""
import sys

from ifru_ext.data.synthetic import movielens_shaped_ratings

users, items, ratings, seed = (int(argument) for argument in sys.argv[1:5])
frame = movielens_shaped_ratings(users, items, ratings, seed)
with open(sys.argv[5], "w") as out:
    out.writelines(f"{user}::{item}::{rating}::{time}\n" for user, item, rating, time in frame.itertuples(index=False))
