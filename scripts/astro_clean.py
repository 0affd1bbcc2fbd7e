"""SExtractor's CLEAN merge, which sep leaves out.

CLEAN removes the detections that are only the wings of a brighter neighbour: the
neighbour's profile, extrapolated as a Moffat of index CLEAN_PARAM from its filtered flux
and shape, exceeds the detection's own level. sep (which decides which detections
survive, as SExtractor does) drops a removed detection; SExtractor merges it into the
object that swallowed it (src/clean.c, mergeobject): its isophotal flux (FLUX_ISO), its
detection pixels (FLUX_ISOCOR's area), its peak and its pixels in the segmentation map go
to that object. Here a removed detection is a group of threshold pixels outside every
object with at least DETECT_MINAREA pixels, and it goes to the brighter object within the
clean zone whose extrapolated profile is the highest at its barycentre.
"""

from typing import NamedTuple

import numpy as np

CLEAN_ZONE = 10.0  # SExtractor tests the neighbours within CLEAN_ZONE x (A + A')


class PixelGroups(NamedTuple):
    """8-connected groups of a sparse set of pixels: their flat indices in raster order,
    each pixel's group label (from 1, numbered in raster order of the groups' first
    pixels, as scipy.ndimage.label numbers them), the size of each label (0 for label 0)
    and the image's shape."""
    index: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    shape: tuple


def pixel_groups(index, shape):
    """PixelGroups of the pixels of an image of that shape at the flat indices (sorted).
    Only those pixels are worked on: the neighbours are found by binary search among
    them and the groups by scipy.sparse.csgraph, so the cost follows their count, not
    the image's size."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    width = shape[1]
    count = len(index)
    if not count:
        return PixelGroups(index, np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64),
                           tuple(shape))
    column = index % width
    tails, heads = [], []
    # the neighbours already passed in raster order: left, upper left, up, upper right
    for step, allowed in ((1, column > 0), (width + 1, column > 0), (width, None),
                          (width - 1, column < width - 1)):
        wanted = index - step
        found = np.minimum(np.searchsorted(index, wanted), count - 1)
        hit = index[found] == wanted
        if allowed is not None:
            hit &= allowed
        tails.append(np.flatnonzero(hit))
        heads.append(found[hit])
    tails, heads = np.concatenate(tails), np.concatenate(heads)
    graph = coo_matrix((np.ones(len(tails), dtype=np.int8), (tails, heads)),
                       shape=(count, count))
    _, component = connected_components(graph, directed=False)
    # number the groups by their first pixel, in raster order
    first = np.full(component.max() + 1, count, dtype=np.int64)
    np.minimum.at(first, component, np.arange(count))
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    labels = rank[component]
    return PixelGroups(index, labels, np.bincount(labels, minlength=len(first) + 1),
                       tuple(shape))


def area_corrections(objects, segmap, image, wanted):
    """sep's abcor of the wanted objects (a boolean per object; 1 for the others): the
    isophotal area between the detection threshold and half the peak over that of a
    Gaussian with the object's A and B (at most 1)."""
    count = len(objects)
    labels = segmap.ravel()
    index = np.flatnonzero(labels)
    owner = labels[index].astype(np.int64) - 1
    index, owner = index[wanted[owner]], owner[wanted[owner]]
    values = image.ravel()[index].astype(np.float64)
    level = objects["thresh"].astype(np.float64)
    half = (level + objects["peak"]) / 2.0
    darea = (np.bincount(owner[values > half[owner]], minlength=count)
             - np.bincount(owner[values > level[owner]], minlength=count)).astype(np.float64)
    ratio = level / half
    with np.errstate(divide="ignore", invalid="ignore"):
        abcor = np.where(darea < 0, darea, -1.0) / (
            2 * np.pi * np.log(np.where(ratio < 1.0, ratio, 0.99)) * objects["a"]
            * objects["b"])
    return np.where(wanted & (ratio > 0), np.minimum(np.nan_to_num(abcor, nan=1.0), 1.0), 1.0)


def group_properties(groups, chosen, image, smoothed):
    """Flux, filtered flux, barycentre (weighted by the filtered image, as sep's), the
    semi-major axis, pixel count and peak of each chosen group label of PixelGroups (the
    filtered image at their pixels: smoothed), and the flat indices of their pixels with
    the position of their group in chosen."""
    position = np.full(len(groups.sizes), -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    which = position[groups.labels]
    inside = which >= 0
    index, which = groups.index[inside], which[inside]
    height, width = groups.shape
    y, x = np.divmod(index, width)
    weight = smoothed[inside].astype(np.float64)
    count = len(chosen)

    def total(values):
        return np.bincount(which, weights=values, minlength=count)
    cflux = total(weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = total(weight * x) / cflux, total(weight * y) / cflux
        xx = total(weight * x * x) / cflux - mx * mx
        yy = total(weight * y * y) / cflux - my * my
        xy = total(weight * x * y) / cflux - mx * my
    major = np.sqrt(np.maximum((xx + yy) / 2 + np.sqrt(((xx - yy) / 2) ** 2 + xy ** 2), 0))
    peak = np.full(count, -np.inf)
    np.maximum.at(peak, which, image.ravel()[index])
    edge = (x == 0) | (y == 0) | (x == width - 1) | (y == height - 1)
    return {"index": index, "which": which,
            "flux": total(image.ravel()[index].astype(np.float64)), "cflux": cflux,
            "x": mx, "y": my, "a": np.nan_to_num(major),
            "npix": np.bincount(which, minlength=count), "peak": peak,
            "edge": np.bincount(which, weights=edge, minlength=count) > 0}


def swallowing_objects(objects, segmap, image, removed, clean_param):
    """For each removed detection, the index of the object that swallowed it (-1: none
    brighter within the clean zone): the highest profile at its barycentre."""
    # the objects within reach in x, from the objects sorted by x (no scipy.spatial import:
    # there are few removed detections)
    by_x = np.argsort(objects["x"], kind="stable")
    sorted_x = objects["x"][by_x]
    reach = CLEAN_ZONE * (removed["a"] + float(objects["a"].max())) + 1.0
    first = np.searchsorted(sorted_x, removed["x"] - reach, side="left")
    last = np.searchsorted(sorted_x, removed["x"] + reach, side="right")
    candidates = []
    for k in range(len(removed["x"])):
        near = by_x[first[k]:last[k]]
        dx, dy = objects["x"][near] - removed["x"][k], objects["y"][near] - removed["y"][k]
        close = (dx * dx + dy * dy <= np.square(objects["a"][near] + removed["a"][k])
                 * CLEAN_ZONE ** 2) & (objects["cflux"][near] > removed["cflux"][k])
        candidates.append((near[close], dx[close], dy[close]))
    wanted = np.zeros(len(objects), dtype=bool)
    for near, _, _ in candidates:
        wanted[near] = True
    unit = np.pi * objects["a"] * objects["b"]
    amplitude = objects["cflux"] / (2 * unit * area_corrections(objects, segmap, image, wanted))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (np.power(amplitude / objects["thresh"], 1.0 / clean_param) - 1) * unit \
            / objects["npix"]
    eater = np.full(len(removed["x"]), -1, dtype=np.int64)
    for k, (near, dx, dy) in enumerate(candidates):
        if not len(near):
            continue
        profile = 1 + alpha[near] * (objects["cxx"][near] * dx * dx + objects["cyy"][near]
                                     * dy * dy + objects["cxy"][near] * dx * dy)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            level = np.where(profile > 1.0, amplitude[near] * np.power(profile, -clean_param),
                             -np.inf)
        if np.isfinite(level).any():
            eater[k] = near[np.argmax(level)]
    return eater


def merge_cleaned(objects, segmap, groups, image, smoothed, minarea, clean_param):
    """(objects with the removed detections merged in, (flat indices, labels) of the
    pixels the segmentation map to write gives to their new owner). groups: the
    PixelGroups of the threshold pixels outside every object; image: the
    background-subtracted image; smoothed: it filtered as sep detects on it, at the
    groups' pixels."""
    import sep
    chosen = np.flatnonzero(groups.sizes >= minarea)
    chosen = chosen[chosen > 0]
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=segmap.dtype))
    if not len(chosen) or not len(objects):
        return objects, none
    removed = group_properties(groups, chosen, image, smoothed)
    eater = swallowing_objects(objects, segmap, image, removed, clean_param)
    merged, eaten = objects.copy(), eater >= 0
    target = eater[eaten]
    np.add.at(merged["flux"], target, removed["flux"][eaten])
    np.add.at(merged["npix"], target, removed["npix"][eaten])
    np.maximum.at(merged["peak"], target, removed["peak"][eaten])
    merged["flag"][target[removed["edge"][eaten]]] |= sep.OBJ_TRUNC
    owner = eater[removed["which"]]
    given = owner >= 0
    return merged, (removed["index"][given], (owner[given] + 1).astype(segmap.dtype))


def give_pixels(segmap, pixels):
    """The segmentation map to write: the merged detections' pixels given to their owner
    (in place: the measurements are done with them at 0)."""
    index, labels = pixels
    segmap.ravel()[index] = labels
    return segmap
