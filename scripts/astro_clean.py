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

import numpy as np

CLEAN_ZONE = 10.0  # SExtractor tests the neighbours within CLEAN_ZONE x (A + A')


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
    semi-major axis, pixel count and peak of each chosen group label, and the flat
    indices of their pixels with the position of their group in chosen."""
    flat = groups.ravel()
    index = np.flatnonzero(flat)
    position = np.full(int(chosen.max()) + 1 if len(chosen) else 1, -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    labels = flat[index]
    which = np.where(labels < len(position), position[np.minimum(labels, len(position) - 1)],
                     -1)
    index, which = index[which >= 0], which[which >= 0]
    y, x = np.divmod(index, groups.shape[1])
    weight = smoothed.ravel()[index].astype(np.float64)
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
    edge = (x == 0) | (y == 0) | (x == groups.shape[1] - 1) | (y == groups.shape[0] - 1)
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


def merge_cleaned(objects, segmap, groups, sizes, image, smoothed, minarea, clean_param):
    """(objects with the removed detections merged in, (flat indices, labels) of the
    pixels the segmentation map to write gives to their new owner). groups, sizes: the
    labelled groups of threshold pixels outside every object and their sizes; image: the
    background-subtracted image; smoothed: it filtered as sep detects on it."""
    import sep
    chosen = np.flatnonzero(sizes >= minarea)
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
