"""The perturbation toolkit shared by methods and evaluation: scoring, in-fill, masks, linear fits,
superpixels, the deletion and insertion curves' engine and the shared parameters. It knows no method
(methods and evaluation import it, never the other way), as Captum keeps its ``_utils`` apart from its
attribution classes. Importing the package imports none of its modules."""
