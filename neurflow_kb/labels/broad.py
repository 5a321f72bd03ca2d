"""The built-in "broad" vocabulary: visual concepts a vision model's neuron group may respond to.

Hand-written for neurflow-kb, grouped by kind (colours, textures and patterns, materials, shapes, parts,
animals, plants and food, objects, vehicles, scenes, lighting and other appearance words). Each entry is
a short noun phrase or adjective that reads well inside a CLIP prompt ("a photo of {}").
"""

from __future__ import annotations

_COLOURS = """
red, dark red, crimson, scarlet, maroon, burgundy, pink, hot pink, pale pink, salmon, coral, magenta,
fuchsia, purple, violet, lavender, lilac, plum, indigo, blue, navy blue, dark blue, royal blue, sky blue,
light blue, baby blue, cyan, turquoise, teal, aqua, green, dark green, forest green, lime green,
light green, olive green, mint green, emerald green, sage green, yellow, pale yellow, lemon yellow,
mustard yellow, golden, amber, orange, dark orange, peach, apricot, tan, beige, cream, ivory, khaki,
brown, dark brown, light brown, chocolate brown, chestnut, rust, copper colour, bronze colour,
white, off-white, grey, light grey, dark grey, charcoal, silver, black, jet black, rainbow colours,
pastel colours, neon colours, earth tones, monochrome, black and white, sepia, multicoloured,
red and white, black and yellow, blue and white, green and brown, orange and black
"""

_TEXTURES = """
striped, horizontal stripes, vertical stripes, diagonal stripes, pinstripes, zebra stripes,
tiger stripes, polka dots, dotted, spotted, leopard spots, speckled, freckled, checkered, checkerboard,
plaid, tartan, houndstooth, argyle, herringbone, chevron, zigzag, wavy lines, concentric circles,
spiral pattern, swirls, paisley, floral pattern, honeycomb, hexagonal pattern, grid, lattice, mesh,
net, woven, knitted, braided, crocheted, quilted, embroidered, lace, fringe, pleated, ribbed,
corrugated, grooved, ridged, bumpy, knobbly, lumpy, porous, pitted, cracked, crackled, crazed,
wrinkled, crumpled, creased, folded, frayed, torn, shredded, scratched, scuffed, chipped, dented,
rusty, peeling paint, flaking, weathered, mossy, mouldy, dusty, dirty, muddy, stained, smudged,
blotchy, marbled, veined, grainy, sandy texture, gravelly, rocky texture, pebbly, scaly, feathery,
furry, fuzzy, hairy, shaggy, woolly, fluffy, velvety, silky, glossy, shiny, matte, satin finish,
metallic sheen, iridescent, pearlescent, glittery, sparkly, sequined, translucent, transparent,
frosted, blurry, sharp edges, smooth, rough, coarse, fine texture, soft, hard, spiky, prickly, thorny,
bristly, jagged, serrated, notched, perforated, bubbly, foamy, frothy, wet, dripping, icy, frosty,
snowy texture, fibrous, stringy, flaky, crusty, crumbly, powdery, gritty, slimy, sticky, oily
"""

_MATERIALS = """
wood, wood grain, bark, plywood, bamboo, wicker, rattan, cork, cardboard, paper, newspaper,
tissue paper, fabric, cotton, denim, linen, silk, wool, felt, fleece, leather, suede, fur, feathers,
rubber, plastic, vinyl, nylon, polyester, foam, sponge, glass, stained glass, mirror, crystal,
porcelain, ceramic, pottery, terracotta, clay, brick, concrete, cement, asphalt, tarmac, stone,
marble, granite, slate, sandstone, limestone, cobblestone, gravel, sand, soil, dirt, mud, rock,
pebbles, metal, steel, stainless steel, iron, cast iron, aluminium, copper, brass, bronze, gold,
silver metal, chrome, tin, sheet metal, wire, chain link, rope, string, yarn, thread, ribbon, canvas,
burlap, straw, hay, wax, paint, ink, chalk, charcoal drawing, plaster, tile, ceramic tiles, mosaic,
carpet, rug, wallpaper, laminate, enamel, lacquer, varnish, resin, ice, snow, water, steam, smoke,
fire, flame, ash, coal, oil, liquid, gel, bone, ivory material, shell, horn, tortoiseshell, sugar
"""

_SHAPES = """
circle, round, oval, ellipse, ring, disc, sphere, ball shape, dome, cylinder, tube, cone, pyramid,
cube, box shape, rectangle, square, triangle, diamond shape, hexagon, octagon, pentagon, star shape,
heart shape, crescent, arc, curve, s-curve, loop, hook shape, spiral, helix, cross shape, x shape,
t shape, l shape, v shape, u shape, arrow shape, straight line, vertical line, horizontal line,
diagonal line, parallel lines, crossing lines, right angle, corner, edge, contour, outline,
silhouette, blob, spot, dot, hole, gap, slit, notch, tip, point, bulge, fork, branching, radial
symmetry, bilateral symmetry, repeated pattern, cluster, row, column, stack, pile, fan shape
"""

_PARTS = """
eye, eyes, eyelashes, eyebrow, pupil, iris, nose, nostril, mouth, lips, teeth, tongue, ear, ears,
face, forehead, cheek, chin, jaw, beard, moustache, hair, curly hair, long hair, bald head, head,
neck, shoulder, arm, elbow, hand, fingers, fingernail, thumb, fist, palm, wrist, leg, knee, foot,
feet, toes, heel, skin, wrinkled skin, torso, chest, back, belly, human body, snout, muzzle, whiskers,
fangs, tusk, antlers, horns, mane, tail, fluffy tail, paw, paws, claws, hoof, hooves, fur coat,
spots on fur, wing, wings, feathered wing, beak, bill, talons, crest, comb of a rooster, plumage,
tail feathers, scales, fin, fins, gills, shell of a turtle, carapace, tentacles, antennae, insect legs,
compound eye, stinger, web, cocoon, egg, nest, horse mane, animal eye, animal nose, animal ear,
dog face, cat face, bird head, fish head, wheel, tyre, hubcap, rim, spokes, headlight, tail light,
windshield, windscreen wiper, side mirror, bumper, licence plate, car door, car window, steering wheel,
dashboard, seat, pedal, handlebar, chain of a bicycle, saddle, propeller, jet engine, wing of a plane,
cockpit, mast, sail, hull, anchor, rudder, chimney, roof, roof tiles, window, window frame, shutters,
door, doorknob, door handle, keyhole, hinge, staircase, steps, railing, balcony, column, pillar,
arch, archway, dome roof, spire, tower, wall, fence post, gate, handle, knob, button, switch, dial,
screen, display, keyboard keys, buttons on a device, lens, camera lens, cable, plug, socket, screw,
bolt, nut, nail, spring, gear, cog, lever, blade, edge of a knife, handle of a knife, bristles, lid,
cap, cork stopper, spout, rim of a cup, neck of a bottle, label, logo, text, letters, numbers,
barcode, sign, strap, buckle, zipper, pocket, collar, sleeve, cuff, hood, laces, sole of a shoe,
heel of a shoe, leaf, leaves, stem, stalk, branch, twig, trunk, tree bark, roots, thorns, petals,
flower petals, pollen, stamen, seed, seeds, pod, husk, peel, rind, core of a fruit, pit of a fruit,
pine cone, needles of a pine, grass blades, moss, lichen, mushroom cap, gills of a mushroom
"""

_ANIMALS = """
dog, puppy, cat, kitten, horse, foal, cow, calf, bull, pig, sheep, lamb, goat, donkey, llama, camel,
deer, moose, elk, reindeer, antelope, gazelle, giraffe, zebra, elephant, rhinoceros, hippopotamus,
lion, tiger, leopard, cheetah, jaguar, panther, lynx, wolf, fox, coyote, bear, polar bear,
brown bear, panda, koala, kangaroo, monkey, ape, gorilla, chimpanzee, orangutan, lemur, sloth,
squirrel, chipmunk, rabbit, hare, mouse, rat, hamster, guinea pig, hedgehog, porcupine, beaver,
otter, raccoon, skunk, badger, bat, seal, sea lion, walrus, whale, dolphin, shark, fish, goldfish,
tropical fish, clownfish, salmon fish, trout, eel, ray, jellyfish, octopus, squid, crab, lobster,
shrimp, starfish, sea urchin, coral reef animal, snail, slug, worm, butterfly, moth, bee, wasp, ant,
beetle, ladybug, dragonfly, grasshopper, cricket, fly, mosquito, spider, scorpion, centipede,
caterpillar, bird, sparrow, robin, crow, raven, pigeon, dove, parrot, macaw, cockatoo, owl, eagle,
hawk, falcon, vulture, seagull, pelican, flamingo, heron, stork, crane bird, swan, duck, goose,
chicken, rooster, turkey, peacock, penguin, ostrich, hummingbird, woodpecker, kingfisher, toucan,
frog, toad, salamander, newt, lizard, gecko, iguana, chameleon, snake, python, cobra, turtle,
tortoise, crocodile, alligator, dinosaur
"""

_PLANTS_FOOD = """
tree, palm tree, pine tree, oak tree, birch tree, willow tree, bush, shrub, hedge, grass, lawn,
weeds, reeds, fern, ivy, vine, cactus, succulent, flower, rose, tulip, daisy, sunflower, lily, orchid,
poppy, dandelion, lotus, lavender flowers, bouquet, potted plant, mushroom, seaweed, algae, autumn
leaves, fallen leaves, apple, banana, orange fruit, lemon, lime, grapefruit, grapes, strawberry,
raspberry, blueberry, cherry, peach fruit, pear, plum fruit, pineapple, mango, kiwi fruit,
watermelon, melon, coconut, pomegranate, fig, avocado, tomato, potato, carrot, onion, garlic,
cabbage, lettuce, broccoli, cauliflower, cucumber, zucchini, pumpkin, squash, corn, peas, beans,
pepper, chili pepper, eggplant, mushrooms on a plate, bread, loaf of bread, baguette, croissant,
bagel, pretzel, sandwich, burger, hot dog, pizza, pasta, spaghetti, noodles, rice, sushi, dumplings,
soup, salad, steak, meat, sausage, bacon, ham, chicken meat, fried egg, boiled egg, cheese, butter,
yogurt, ice cream, cake, cupcake, cookie, biscuit, doughnut, muffin, pancake, waffle, pie, chocolate,
candy, lollipop, jelly, honey, jam, nuts, peanuts, almonds, cereal, popcorn, french fries, chips,
coffee, tea, milk, juice, wine, beer, cocktail, soda, water in a glass
"""

_OBJECTS = """
chair, armchair, sofa, couch, bench, stool, table, desk, bed, pillow, blanket, bookshelf, shelf,
cabinet, cupboard, drawer, wardrobe, dresser, mirror frame, lamp, lampshade, chandelier, candle,
candlestick, clock, wall clock, alarm clock, vase, flower pot, picture frame, painting, poster,
curtain, blinds, carpet on a floor, doormat, towel, bathtub, shower, sink, toilet, faucet, tap,
bucket, basket, bin, trash can, box, cardboard box, crate, barrel, jar, bottle, wine bottle,
plastic bottle, can, tin can, cup, mug, teacup, glass, wine glass, plate, bowl, saucer, dish,
tray, pot, pan, frying pan, kettle, teapot, coffee maker, toaster, microwave, oven, stove,
refrigerator, dishwasher, washing machine, fork, knife, spoon, chopsticks, spatula, ladle, whisk,
cutting board, rolling pin, grater, scissors, needle, thread spool, safety pin, button on clothing,
zip, umbrella, handbag, purse, wallet, backpack, suitcase, briefcase, shopping bag, paper bag,
plastic bag, hat, cap, helmet, crown, hood of a jacket, scarf, glove, mitten, sock, shoe, boot,
sneaker, sandal, high heels, slipper, shirt, t-shirt, blouse, sweater, jacket, coat, suit, tie,
bow tie, dress, skirt, trousers, jeans, shorts, uniform, apron, swimsuit, pyjamas, belt, watch,
bracelet, necklace, ring on a finger, earring, jewellery, sunglasses, glasses, mask, gloves, wig,
book, open book, notebook, magazine, letter, envelope, postcard, map, calendar, pen, pencil, crayon,
marker, paintbrush, eraser, ruler, stapler, paper clip, scissors on a desk, tape, glue, computer,
laptop, desktop computer, monitor, keyboard, computer mouse, printer, tablet, smartphone, telephone,
mobile phone, television, remote control, radio, speaker, headphones, microphone, camera, video
camera, projector, game controller, joystick, battery, light bulb, torch, lantern, power cable,
extension cord, fan, heater, air conditioner, vacuum cleaner, iron for clothes, hair dryer, comb,
hairbrush, toothbrush, toothpaste, soap, shampoo bottle, razor, perfume bottle, lipstick, makeup,
hammer, screwdriver, wrench, pliers, saw, drill, axe, shovel, spade, rake, hoe, pitchfork,
wheelbarrow, ladder, toolbox, tape measure, nails in wood, padlock, key, chain, rope coil, knot,
fishing rod, net for fishing, tent, sleeping bag, compass, binoculars, telescope, microscope,
magnifying glass, globe, hourglass, thermometer, scale, weighing scale, syringe, pill, bandage,
wheelchair, crutches, stethoscope, guitar, electric guitar, violin, cello, piano, keyboard
instrument, drum, drum kit, trumpet, saxophone, flute, clarinet, harmonica, accordion, harp,
xylophone, bell, whistle, ball, football, soccer ball, basketball, baseball, tennis ball, golf ball,
bat for baseball, tennis racket, hockey stick, skateboard, surfboard, skis, snowboard, ice skates,
roller skates, frisbee, kite, balloon, teddy bear, doll, toy, toy car, building blocks, puzzle,
dice, playing cards, chess board, chess pieces, trophy, medal, flag, banner, sign post, street sign,
traffic light, stop sign, parking meter, fire hydrant, mailbox, post box, phone booth, bench in a
park, street lamp, lamp post, bollard, traffic cone, barrier, fence, gate in a fence, wall of bricks,
mural, graffiti, statue, sculpture, fountain, monument, gravestone, cross, totem pole, well,
windmill, wind turbine, solar panel, satellite dish, antenna, power lines, electricity pylon,
pipe, drainpipe, manhole cover, grate, vent, radiator, fireplace, stove pipe, barbecue grill,
picnic table, hammock, swing, slide, seesaw, trampoline, pool float, life buoy, lifejacket,
gun, sword, shield, bow and arrow, cannon, rocket, missile, robot, mannequin, coin, banknote,
credit card, ticket, receipt, screen with text, book cover, bookmark, origami, gift box, wrapping
paper, present with a bow, christmas tree, ornament, decoration, confetti, fireworks, sparkler,
birthday cake, wreath, lantern festival, mask for a costume, costume, puppet, bubble, soap bubbles
"""

_VEHICLES = """
car, sports car, racing car, taxi, police car, ambulance, fire engine, bus, school bus, double-decker
bus, truck, lorry, pickup truck, van, minivan, jeep, tractor, bulldozer, excavator, crane, forklift,
motorcycle, scooter, moped, bicycle, tricycle, unicycle, train, steam locomotive, subway train,
tram, cable car, airplane, jet, airliner, helicopter, glider, hot air balloon, airship, spaceship,
boat, sailboat, yacht, canoe, kayak, rowing boat, speedboat, ship, cruise ship, cargo ship,
container ship, ferry, submarine, raft, gondola, carriage, horse-drawn cart, wagon, sled, sleigh,
snowmobile, golf cart, shopping cart, pram, stroller, skateboard on a street, parked cars, traffic
jam, car park, railway track, railway carriage
"""

_SCENES = """
sky, blue sky, cloudy sky, clouds, storm clouds, sunset, sunrise, dusk, night sky, starry sky, moon,
sun, rainbow, fog, mist, rain, raindrops, snow, snowflakes, hail, lightning, horizon, landscape,
seascape, cityscape, skyline, mountain, mountains, snowy mountain, hill, hills, valley, cliff,
canyon, desert, sand dunes, oasis, beach, sandy beach, shore, coast, ocean, sea, waves, surf, lake,
pond, river, stream, waterfall, rapids, swamp, marsh, wetland, glacier, iceberg, volcano, cave,
rock formation, boulders, island, field, meadow, grassland, prairie, savanna, farmland, wheat field,
rice paddy, vineyard, orchard, garden, flower garden, flower bed, park, playground, forest, jungle,
rainforest, woods, pine forest, bamboo forest, tundra, arctic landscape, underwater scene, coral
reef, seabed, city, town, village, street, road, highway, motorway, bridge, tunnel, crossroads,
pavement, sidewalk, alley, square in a city, market, shop, shop window, supermarket, mall,
restaurant, cafe, bar, kitchen, dining room, living room, bedroom, bathroom, office, classroom,
library, museum, gallery, church, cathedral, temple, mosque, castle, palace, ruins, tower block,
skyscraper, house, cottage, cabin, barn, farmhouse, shed, garage, warehouse, factory, construction
site, harbour, port, dock, pier, marina, lighthouse, airport, runway, train station, railway
station, bus stop, parking lot, gas station, stadium, sports field, football pitch, tennis court,
basketball court, swimming pool, gym, ski slope, race track, zoo, aquarium, farm, stable,
greenhouse, laboratory, hospital, hospital room, stage, concert, theatre, cinema, circus, fairground,
carnival, crowd, audience, indoor scene, outdoor scene, interior, exterior, room, corridor, hallway,
staircase in a building, attic, basement, rooftop, balcony view, window view, backyard, front yard,
driveway, porch, patio, courtyard, campsite, picnic, party, wedding, studio backdrop, plain
background, white background, black background, green screen, empty room, aerial view, satellite
image, close-up, macro photograph, portrait, group photo, selfie, still life
"""

_PEOPLE_ACTIONS = """
person, man, woman, child, baby, toddler, boy, girl, teenager, elderly person, crowd of people,
family, couple, soldier, police officer, doctor, nurse, chef, farmer, worker, athlete, football
player, swimmer, runner, cyclist, skier, surfer, dancer, musician, singer, clown, bride, groom,
smiling face, laughing, crying, sleeping, walking, running, jumping, sitting, standing, lying down,
eating, drinking, reading, writing, cooking, swimming, climbing, riding a horse, riding a bike,
driving, flying, playing, fighting, hugging, waving, pointing, shaking hands, holding something,
carrying a bag, throwing a ball, catching a ball, kicking, dancing pose, yoga pose
"""

_APPEARANCE = """
bright light, dim light, darkness, shadow, shadows, silhouette against the sky, backlit, sunlight,
sunbeam, lens flare, glare, reflection, reflections in water, highlight, spotlight, neon lights,
street lights at night, candlelight, firelight, glow, glowing, light trails, bokeh, motion blur,
out of focus, overexposed, underexposed, high contrast, low contrast, saturated colours, faded
colours, vintage photo, old photograph, film grain, noise, pixelated, jpeg artefacts, low resolution,
watermark, text overlay, border, frame around a picture, vignette, drawing, sketch, pencil drawing,
line drawing, cartoon, comic, illustration, painting style, oil painting, watercolour, abstract art,
pattern art, diagram, chart, graph, map view, screenshot, x-ray image, infrared image, thermal
image, microscope image, 3d render, symmetry, clutter, empty space, many small objects, single
object, repeating objects, large object, tiny object, crowded, sparse, close view, distant view,
top-down view, side view, front view, rear view, upside down, tilted, motion, speed, stillness,
height, depth, perspective, vanishing point, texture close-up, surface, gradient, colour gradient,
uniform colour, colour contrast, complementary colours, warm colours, cool colours
"""

_SECTIONS = {
    "colours": _COLOURS, "textures": _TEXTURES, "materials": _MATERIALS, "shapes": _SHAPES,
    "parts": _PARTS, "animals": _ANIMALS, "plants and food": _PLANTS_FOOD, "objects": _OBJECTS,
    "vehicles": _VEHICLES, "scenes": _SCENES, "people and actions": _PEOPLE_ACTIONS,
    "appearance": _APPEARANCE,
}


def _split(text: str) -> list[str]:
    return [w.strip() for w in text.replace("\n", " ").split(",") if w.strip()]


def broad_sections() -> dict[str, list[str]]:
    """The broad vocabulary by kind (each list de-duplicated, first occurrence kept)."""
    return {name: list(dict.fromkeys(_split(text))) for name, text in _SECTIONS.items()}


def broad_concepts() -> list[str]:
    """Every concept of the broad vocabulary once, in section order."""
    return list(dict.fromkeys(c for words in broad_sections().values() for c in words))
