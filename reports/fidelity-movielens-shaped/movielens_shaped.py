"""movielens_shaped.py USERS ITEMS RATINGS SEED OUT [SHAPE]: ``ifru_ext.data.synthetic.shaped_ratings``
(SHAPE ``movielens``, the default, or ``amazon``) written as a file: MovieLens 1M's layout
``user::item::rating::timestamp``, or for ``amazon`` a headed CSV ``user_id,parent_asin,rating,timestamp``."""
import sys

from ifru_ext.data.synthetic import AMAZON_SHAPE, MOVIELENS_SHAPE, shaped_ratings

users, items, ratings, seed = (int(argument) for argument in sys.argv[1:5])
amazon = len(sys.argv) > 6 and sys.argv[6] == "amazon"
frame = shaped_ratings(users, items, ratings, seed, AMAZON_SHAPE if amazon else MOVIELENS_SHAPE)
with open(sys.argv[5], "w") as out:
    if amazon:
        out.write("user_id,parent_asin,rating,timestamp\n")
        out.writelines(f"{user},{item},{rating}.0,{time}\n" for user, item, rating, time in frame.itertuples(index=False))
    else:
        out.writelines(f"{user}::{item}::{rating}::{time}\n" for user, item, rating, time in frame.itertuples(index=False))
