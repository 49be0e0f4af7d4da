"""Tools around the method, not the method: the benchmark harness (:mod:`.bench`, ``strdiff
bench``) and the dataset tooling (:mod:`.datasets`, ``strdiff data prepare`` / ``masks``). They
import the library; the library never imports them."""
